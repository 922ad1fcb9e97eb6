"""The sample app: a Sanic service for logins, searches and safe viral spikes (see README.md)."""
