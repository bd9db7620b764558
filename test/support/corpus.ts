import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** The real 820-migration history, found through FLOTILLA_CORPUS_DIR. */
export function corpusDir(): string {
  return resolve(REPO, process.env.FLOTILLA_CORPUS_DIR ?? '../shared/corpus/trigger.dev/migrations');
}

export const hasCorpus = existsSync(corpusDir());
