// Small DOM helpers shared by the viewer page and the host console.

export const $ = (id) => document.getElementById(id);

// el("li", {class: "x", text: "hi", "data-offset": "1-0"}, child, ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

// Append to a scrolling list, keep at most `max` items, and stay pinned to the bottom
// only if the reader was already there (so reading older lines is not interrupted).
export function appendCapped(list, node, max) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(node);
  while (list.children.length > max) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}
