// xterm.js adds <style> elements for its theme and sizing. The Content-Security-Policy allows a
// style element only with this response's nonce, so style elements created by script get it here.
// Load before xterm.js; the nonce comes from <meta name="csp-nonce">.
(function () {
  const meta = document.querySelector('meta[name="csp-nonce"]');
  if (!meta || !meta.content) return;
  const nonce = meta.content;
  const create = Document.prototype.createElement;
  Document.prototype.createElement = function (tagName, options) {
    const element = create.call(this, tagName, options);
    if (String(tagName).toLowerCase() === "style") element.nonce = nonce;
    return element;
  };
})();
