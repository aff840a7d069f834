// Rewrites the flag table of `weft agent` in README.md from the flag specs
// the parser uses (test/unit/readme.test.ts fails until this is run after a
// flag changes). Usage: npm run build && node dist/scripts/readme-flags.js

import { readFileSync, writeFileSync } from 'node:fs';
import { formatMarkdownTable } from '../agent/flags.js';
import { agentFlags } from '../agent/options.js';
import { REPO_ROOT } from '../test/lab/weft.js';

const path = `${REPO_ROOT}/README.md`;
const before = readFileSync(path, 'utf8');
const after = before.replace(/(<!-- flags:begin[^>]*-->\n)[\s\S]*?(\n<!-- flags:end -->)/, (_m, open: string, close: string) => open + formatMarkdownTable(agentFlags) + close);
if (after === before) console.log('README flag table already current');
else {
  writeFileSync(path, after);
  console.log('README flag table updated');
}
