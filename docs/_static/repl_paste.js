/* The copy button of a ">>>" block gives what pastes into `python -m asyncio`.
 *
 * sphinx-copybutton keeps the source lines and drops prompts and output; the
 * interactive interpreter also needs an empty line after a compound statement
 * (a `def`, `async with`, `for`, `try`...) before the next statement starts, or
 * the paste is a SyntaxError.  This copies such blocks itself, with those lines
 * and a final newline.  Other code blocks are copied by sphinx-copybutton.
 */
(function () {
  "use strict";
  const COMPOUND = /^(async\s+)?(def|class|for|while|with|if|try)\b|^@/;

  function replText(textContent) {
    const out = [];
    let statement = null; // lines of the statement being copied
    const finish = function () {
      if (statement === null) return;
      out.push(...statement);
      if (statement.length > 1 || COMPOUND.test(statement[0])) out.push("");
      statement = null;
    };
    for (const line of textContent.split("\n")) {
      if (line.startsWith(">>> ") || line === ">>>") {
        finish();
        statement = [line.slice(4)];
      } else if (statement !== null && line.startsWith("... ")) {
        statement.push(line.slice(4));
      } else if (statement !== null && line === "...") {
        // an empty line inside a statement: the interpreter would end it there
      } else {
        finish(); // output of the example: not copied
      }
    }
    finish();
    // Each line ends with a newline; a final compound statement keeps its empty line.
    return out.length ? out.join("\n") + "\n" : "";
  }

  // sphinx-copybutton keeps its formatting function private, so a ">>>" block's
  // button is served here, before ClipboardJS sees the click (capture phase).
  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function feedback(button, ok) {
    // copybutton.js's own helpers and messages are global: reuse them when present.
    if (typeof temporarilyChangeTooltip !== "function") return;
    const texts = messages[locale] || messages.en;
    temporarilyChangeTooltip(button, texts.copy, ok ? texts.copy_success : texts.copy_failure);
    if (ok && typeof temporarilyChangeIcon === "function") temporarilyChangeIcon(button);
  }

  // "Copy recipe" (docs/_ext/copy_recipe.py): the snippet travels in a script element
  // next to the button, exactly as python -m recipes copy prints it.
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button.copy-recipe-button");
    if (!button) return;
    const source = button.parentElement.querySelector("script.copy-recipe-text");
    if (!source) return;
    const text = source.textContent;
    const write = navigator.clipboard && window.isSecureContext
      ? navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); })
      : fallbackCopy(text);
    const label = button.textContent;
    write.then(
      function () { button.textContent = button.dataset.copied || "Copied!"; },
      function () { button.textContent = button.dataset.failed || "Copy failed"; }
    ).then(function () {
      setTimeout(function () { button.textContent = label; }, 2000);
    });
  });

  document.addEventListener(
    "click",
    function (event) {
      const button = event.target.closest && event.target.closest("button.copybtn");
      if (!button) return;
      const target = document.querySelector(button.dataset.clipboardTarget);
      if (!target || !/^>>> /m.test(target.innerText)) return; // not an example
      event.stopImmediatePropagation();
      event.preventDefault();
      const text = replText(target.innerText);
      const write = navigator.clipboard && window.isSecureContext
        ? navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); })
        : fallbackCopy(text);
      write.then(
        function () { feedback(button, true); },
        function () { feedback(button, false); }
      );
    },
    true
  );
})();
