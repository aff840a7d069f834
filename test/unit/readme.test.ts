// The README's flag table is generated from the flag specs the parser uses;
// this keeps the two from drifting apart.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatMarkdownTable } from '../../agent/flags.js';
import { agentFlags } from '../../agent/options.js';

describe('README', () => {
  it('holds the current flag table of weft agent', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const m = /<!-- flags:begin[^>]*-->\n([\s\S]*?)\n<!-- flags:end -->/.exec(readme);
    expect(m, 'README lacks the flags:begin/flags:end markers').not.toBeNull();
    // After changing a flag: npm run build && node dist/scripts/readme-flags.js
    expect(m![1]).toBe(formatMarkdownTable(agentFlags));
  });

  it('opens with the demo and test commands that .ci/run uses', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
    expect(firstBlock).toContain('bash scripts/demo.sh');
    expect(firstBlock).toContain('bash scripts/test.sh');
    expect(ci).toMatch(/^bash scripts\/test\.sh$/m);
  });
});
