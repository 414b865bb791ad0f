// Renders template cases with handlebars.js (tests/tools, pinned to 4.7.10): the reference
// disparo's templates are compared against (tests/template_differential.rs).
//
//   node hbs_reference.js < cases.json > results.json
//
// Input: a JSON array of {id, template, context, partials?, strict?, escape?}: with `escape`
// true it escapes as disparo's HTML parts do; otherwise it renders as its text parts do (noEscape).
// disparo's own helpers (upper, lower, default) are defined here as docs/templates.md states
// them, so cases can test how they combine with the language. Output: a JSON array of
// {id, output} or {id, error} in input order.
const path = require("path");
const Handlebars = require(path.join(__dirname, "..", "tools", "node_modules", "handlebars"));

function text(v) {
  if (v === null || v === undefined) return "";
  return String(v);
}

function isBlank(v) {
  return v === null || v === undefined || (typeof v === "string" && v.trim() === "");
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const cases = JSON.parse(input);
  // The `log` helper writes with console.log: keep it off the results.
  console.log = console.info = console.warn = console.error = () => {};
  const results = cases.map((c) => {
    const hb = Handlebars.create();
    hb.registerHelper("upper", (v) => text(v).toUpperCase());
    hb.registerHelper("lower", (v) => text(v).toLowerCase());
    hb.registerHelper("default", (v, fallback) => (isBlank(v) ? text(fallback) : text(v)));
    for (const [name, src] of Object.entries(c.partials || {})) hb.registerPartial(name, src);
    try {
      const render = hb.compile(c.template, { strict: !!c.strict, noEscape: !c.escape });
      return { id: c.id, output: render(c.context === undefined ? {} : c.context) };
    } catch (e) {
      return { id: c.id, error: String(e && e.message ? e.message : e).split("\n")[0] };
    }
  });
  process.stdout.write(JSON.stringify(results));
});
