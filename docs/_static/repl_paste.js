/* The copy button of a ">>>" block gives what pastes into `python -m asyncio`.
 *
 * sphinx-copybutton keeps the source lines and drops prompts and output; the
 * interactive interpreter also needs an empty line after a compound statement
 * (a `def`, `async with`, `for`, `try`...) before the next statement starts, or
 * the paste is a SyntaxError.  This wraps the copy button's formatting function
 * and adds those lines.  Other code blocks are copied as before.
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

  const original = window.formatCopyText;
  if (typeof original !== "function") return;
  window.formatCopyText = function (textContent) {
    if (/^>>> /m.test(textContent)) return replText(textContent);
    return original.apply(this, arguments);
  };
  window.cookbookReplText = replText; // for the tests of the book
})();
