// A small Markdown renderer for model answers: headings, lists, quotes, code,
// bold / italic / inline code. It escapes the text first and only then adds tags, so
// an answer can never inject markup (the page's CSP blocks scripts as a second line).
// Links are shown as text: a clinician should not be sent off-site by a model.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

function inline(text) {
  const codes = [];
  // Inline code first, kept aside so that ** inside it stays literal.
  let html = escapeHtml(text).replace(/`([^`]+)`/g, (_, code) => {
    codes.push(code);
    return `\u0000${codes.length - 1}\u0000`;
  });
  html = html
    .replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*\s][^*]*?)\*/g, "$1<em>$2</em>");
  return html.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

const BLOCK_START = /^(#{1,6}\s|```|>\s?|[-*+]\s|\d+[.)]\s)/;

export function renderMarkdown(source) {
  const lines = source.replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
    } else if (line.startsWith("```")) {
      const body = [];
      for (i += 1; i < lines.length && !lines[i].startsWith("```"); i += 1) body.push(lines[i]);
      i += 1; // closing fence (or the end of an answer still streaming)
      out.push(`<pre><code>${escapeHtml(body.join("\n"))}</code></pre>`);
    } else if (/^#{1,6}\s/.test(line)) {
      const level = line.match(/^#+/)[0].length;
      const tag = `h${Math.min(level + 2, 6)}`; // h1/h2 belong to the page itself
      out.push(`<${tag}>${inline(line.slice(level).trim())}</${tag}>`);
      i += 1;
    } else if (/^>\s?/.test(line)) {
      const body = [];
      for (; i < lines.length && /^>\s?/.test(lines[i]); i += 1) body.push(lines[i].replace(/^>\s?/, ""));
      out.push(`<blockquote>${renderMarkdown(body.join("\n"))}</blockquote>`);
    } else if (/^([-*+]|\d+[.)])\s/.test(line)) {
      const ordered = /^\d/.test(line);
      const marker = ordered ? /^\d+[.)]\s+/ : /^[-*+]\s+/;
      const items = [];
      for (; i < lines.length && marker.test(lines[i]); i += 1) {
        items.push(`<li>${inline(lines[i].replace(marker, ""))}</li>`);
      }
      const tag = ordered ? "ol" : "ul";
      out.push(`<${tag}>${items.join("")}</${tag}>`);
    } else {
      const body = [];
      for (; i < lines.length && lines[i].trim() && !BLOCK_START.test(lines[i]); i += 1) {
        body.push(inline(lines[i]));
      }
      out.push(`<p>${body.join("<br>")}</p>`);
    }
  }
  return out.join("");
}
