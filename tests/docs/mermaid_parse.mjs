#!/usr/bin/env node
// Parses every ```mermaid block of the Markdown files named on the command line with the real
// Mermaid parser, the one GitHub and the docs site render with.
//
// Usage: node tests/docs/mermaid_parse.mjs FILE.md [FILE.md ...]
// Exit 0 when every block parses; 1 with "FILE:LINE: error" lines otherwise; 2 on bad usage.
//
// Mermaid expects a browser: its sanitizer (DOMPurify) needs `window`/`document` at import time, so
// jsdom provides them first and mermaid is imported dynamically afterwards (a static import would be
// hoisted above this setup and fail with "DOMPurify.addHook is not a function").
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>", { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
for (const name of ["Element", "HTMLElement", "SVGElement", "Node", "DOMParser", "MutationObserver"]) {
  if (!(name in globalThis) && dom.window[name]) globalThis[name] = dom.window[name];
}

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

/** Every ```mermaid fenced block of a Markdown text, with the line its body starts on (1-based). */
export function mermaidBlocks(text) {
  const blocks = [];
  const lines = text.split(/\r?\n/);
  let open = null;
  lines.forEach((line, i) => {
    if (open === null) {
      const m = line.match(/^(\s*)(`{3,}|~{3,})\s*mermaid\s*$/);
      if (m) open = { fence: m[2], start: i + 2, body: [] };
    } else if (line.trim().startsWith(open.fence) && line.trim().replace(/[`~]/g, "") === "") {
      blocks.push({ line: open.start, source: open.body.join("\n") });
      open = null;
    } else {
      open.body.push(line);
    }
  });
  if (open !== null) blocks.push({ line: open.start, source: null, error: "unclosed ```mermaid fence" });
  return blocks;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node tests/docs/mermaid_parse.mjs FILE.md [FILE.md ...]");
  process.exit(2);
}

let failures = 0;
let parsed = 0;
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    console.error(`${file}: cannot read: ${err.message}`);
    failures++;
    continue;
  }
  for (const block of mermaidBlocks(text)) {
    if (block.source === null) {
      console.error(`${file}:${block.line}: ${block.error}`);
      failures++;
      continue;
    }
    if (block.source.trim() === "") {
      console.error(`${file}:${block.line}: empty mermaid block`);
      failures++;
      continue;
    }
    try {
      // suppressErrors: false makes parse() reject instead of returning false.
      const result = await mermaid.parse(block.source, { suppressErrors: false });
      console.log(`${file}:${block.line}: ok (${result.diagramType})`);
      parsed++;
    } catch (err) {
      const message = String(err?.message ?? err).split("\n").join("\n    ");
      console.error(`${file}:${block.line}: mermaid parse error:\n    ${message}`);
      failures++;
    }
  }
}
console.log(`${parsed} mermaid block(s) parsed, ${failures} failure(s)`);
process.exit(failures ? 1 : 0);
