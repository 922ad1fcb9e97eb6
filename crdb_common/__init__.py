"""What the sample app and the pipeline both read, and neither owns: redaction of secrets in anything shown
(redact.py), OpenTelemetry set up from the standard OTEL_* variables (otel.py), and httpx's one-shot calls
with one TLS context per process (httpc.py).

The app is a house of its own (the pipeline talks to it over HTTP and Prometheus, never by import), so what
both need lives here, below both: it imports nothing of either package, and both images ship it.
"""
