// Render the Python step's analysis as a small text report.
const fs = require("fs");
const analysis = JSON.parse(fs.readFileSync("/input/analyse/analysis.json", "utf8"));
const lines = [`words: ${analysis.words}`];
for (const [length, count] of Object.entries(analysis.by_length)) {
  lines.push(`length ${length}: ${count}`);
}
fs.writeFileSync("/output/report.txt", lines.join("\n") + "\n");
console.log(lines.join("\n"));
