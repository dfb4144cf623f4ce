// Small behaviours that used to be inline attributes (onsubmit, onchange, hx-on): the
// Content-Security-Policy runs only script files, so they are bound here by data attributes.
(function () {
  // <form data-confirm="…"> or <button data-confirm="…">: ask before submitting.
  document.addEventListener(
    "submit",
    (event) => {
      const submitter = event.submitter;
      const message = (submitter && submitter.dataset.confirm) || event.target.dataset.confirm;
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation(); // nor may htmx send it
      }
    },
    true,
  );
  // <select data-autosubmit>: choosing submits the form.
  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });
  // <form data-waiting-target="id">: show the target's data-waiting text as the request leaves
  // (the answer may arrive over the live connection before the response does).
  document.body.addEventListener("htmx:beforeRequest", (event) => {
    const id = event.detail.elt.dataset && event.detail.elt.dataset.waitingTarget;
    const target = id && document.getElementById(id);
    if (target) target.textContent = target.dataset.waiting;
  });
  // What the live pages build elements with (environment.js, pipeline.js): el("span", {class: "badge",
  // text: "…"}, [children]); "text" sets the text, every other key is an attribute.
  window.opsPortal = {
    el(tag, attrs, children) {
      const node = document.createElement(tag);
      Object.entries(attrs || {}).forEach(([k, v]) => {
        if (k === "text") node.textContent = v;
        else node.setAttribute(k, v);
      });
      (children || []).forEach((c) => node.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
      return node;
    },
  };
})();
