// No function in web/ is longer than MAX_LINES lines (the project's rule for Python and JS): node --test tests/js/
//
// A small tokenizer (comments, strings, template literals, regular expressions) and a bracket matcher find
// every function: `function` declarations and expressions, methods, and arrow functions with a block or an
// expression body. A function's length runs from its name (or parameter list) to its last token.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

const MAX_LINES = 60;
const WEB = new URL("../../web/", import.meta.url);
const CLOSERS = { ")": "(", "]": "[", "}": "{" };
const NOT_FUNCTIONS = new Set(["if", "for", "while", "switch", "catch", "with", "await", "return", "typeof"]);
// After these tokens a "/" starts a regular expression, not a division.
const BEFORE_REGEX = new Set(["return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void"]);
const WORD = /[\w$]+/y;
const FLAGS = /[a-z]*/iy;

/** Index just past the string literal opened at i (quote = its delimiter). */
function skipString(text, i, quote) {
  for (i += 1; i < text.length && text[i] !== quote; i += 1) if (text[i] === "\\") i += 1;
  return i + 1;
}

/** Index just past the template literal opened at i, nested ${...} expressions and templates included. */
function skipTemplate(text, i) {
  for (i += 1; i < text.length && text[i] !== "`"; i += 1) {
    if (text[i] === "\\") i += 1;
    else if (text.startsWith("${", i)) i = skipBraces(text, i + 1) - 1;
  }
  return i + 1;
}

/** Index just past the "}" matching the "{" at i, skipping strings and templates inside. */
function skipBraces(text, i) {
  let depth = 0;
  for (; i < text.length; i += 1) {
    const ch = text[i];
    if (ch === '"' || ch === "'") i = skipString(text, i, ch) - 1;
    else if (ch === "`") i = skipTemplate(text, i) - 1;
    else if (ch === "{") depth += 1;
    else if (ch === "}" && --depth === 0) return i + 1;
  }
  return i;
}

/** Index just past the regular expression literal opened at i (character classes may hold "/"), flags included. */
function skipRegex(text, i) {
  let inClass = false;
  for (i += 1; i < text.length; i += 1) {
    if (text[i] === "\\") i += 1;
    else if (text[i] === "[") inClass = true;
    else if (text[i] === "]") inClass = false;
    else if (text[i] === "/" && !inClass) break;
  }
  FLAGS.lastIndex = i + 1;
  return i + 1 + FLAGS.exec(text)[0].length;
}

/** Whether a "/" after this token starts a regular expression. */
function regexAllowed(previous) {
  if (!previous) return true;
  if (previous.kind === "word") return BEFORE_REGEX.has(previous.text);
  return previous.kind === "punct" && !")]}".includes(previous.text);
}

/** End index and kind (word, punct, literal; null for space and comments) of what starts at i. */
function scan(text, i, previous) {
  const ch = text[i];
  if (/\s/.test(ch)) return [i + 1, null];
  if (text.startsWith("//", i)) return [text.includes("\n", i) ? text.indexOf("\n", i) : text.length, null];
  if (text.startsWith("/*", i)) return [text.indexOf("*/", i + 2) + 2, null];
  if (ch === '"' || ch === "'") return [skipString(text, i, ch), "literal"];
  if (ch === "`") return [skipTemplate(text, i), "literal"];
  if (ch === "/" && regexAllowed(previous)) return [skipRegex(text, i), "literal"];
  WORD.lastIndex = i;
  const word = WORD.exec(text);
  if (word) return [i + word[0].length, "word"];
  return [text.startsWith("=>", i) ? i + 2 : i + 1, "punct"];
}

/** The source's tokens { kind, text, line }, without space and comments; a template literal is one token. */
export function tokenize(text) {
  const tokens = [];
  let line = 1;
  for (let i = 0; i < text.length;) {
    const [end, kind] = scan(text, i, tokens.at(-1));
    if (kind) tokens.push({ kind, text: text.slice(i, end), line });
    for (let k = i; k < end; k += 1) if (text[k] === "\n") line += 1;
    i = end;
  }
  return tokens;
}

/** For each opening bracket's index, the index of its closer; for each closer, its opener. */
function matchBrackets(tokens) {
  const match = new Map();
  const stack = [];
  tokens.forEach((token, index) => {
    if (token.kind !== "punct") return;
    if ("([{".includes(token.text)) stack.push(index);
    else if (CLOSERS[token.text]) {
      const opener = stack.pop();
      match.set(opener, index);
      match.set(index, opener);
    }
  });
  return match;
}

/** Index of the last token of an arrow function's expression body starting at index. */
function expressionEnd(tokens, match, index) {
  for (let i = index; i < tokens.length; i += 1) {
    const { kind, text } = tokens[i];
    if (kind !== "punct") continue;
    if ("([{".includes(text)) i = match.get(i);
    else if (text === "," || text === ";" || CLOSERS[text]) return i - 1;
  }
  return tokens.length - 1;
}

/** Name and first token index of the function whose parameter list closes at index, or null. */
function functionHead(tokens, match, index) {
  const open = match.get(index);
  const before = tokens[open - 1];
  if (before?.kind !== "word" || NOT_FUNCTIONS.has(before.text)) return null;
  const named = before.text !== "function";
  const keyword = tokens[open - (named ? 2 : 1)]?.text === "function";
  return { name: named ? before.text : "function", start: open - (named && keyword ? 2 : 1) };
}

/** The functions of a source: { name, line, lines }. */
export function functions(text) {
  const tokens = tokenize(text);
  const match = matchBrackets(tokens);
  const found = [];
  tokens.forEach((token, index) => {
    let head = null;
    let end = null;
    if (token.text === "=>") {
      const params = tokens[index - 1];
      const start = params.text === ")" ? match.get(index - 1) : index - 1;
      const name =
        tokens[start - 1]?.text === "=" || tokens[start - 1]?.text === ":" ? tokens[start - 2] : null;
      head = { name: name?.text ?? "arrow function", start };
      end = tokens[index + 1]?.text === "{" ? match.get(index + 1) : expressionEnd(tokens, match, index + 1);
    } else if (token.text === "{" && tokens[index - 1]?.text === ")") {
      head = functionHead(tokens, match, index - 1);
      end = match.get(index);
    }
    if (!head) return;
    const line = tokens[head.start].line;
    found.push({ name: head.name, line, lines: tokens[end].line - line + 1 });
  });
  return found;
}

test("the scanner finds functions, methods and arrows and measures them", () => {
  const source = [
    "const re = /[/{]/g; // a comment with { and function f() {",
    "function outer(a) {",
    "  if (a) { return `x ${a.map((b) => `${b}}`)} }`; }",
    "  a.forEach((b) => { return b; });",
    "  const f = (x) =>",
    "    x + 1;",
    "}",
    "class A {",
    "  get size() {",
    "    return '}';",
    "  }",
    "}",
  ].join("\n");
  const summary = functions(source).map(({ name, line, lines }) => `${name}@${line}:${lines}`);
  assert.deepEqual(summary.sort(), ["arrow function@4:1", "f@5:2", "outer@2:6", "size@9:3"]);
});

const files = readdirSync(WEB, { recursive: true }).filter((name) => name.endsWith(".js"));
for (const name of files) {
  test(`${name}: no function over ${MAX_LINES} lines`, () => {
    const long = functions(readFileSync(new URL(name, WEB), "utf8")).filter(({ lines }) => lines > MAX_LINES);
    assert.deepEqual(
      long.map(({ name: fn, line, lines }) => `${fn} (line ${line}, ${lines} lines)`),
      [],
      "split these into functions with one job each",
    );
  });
}
