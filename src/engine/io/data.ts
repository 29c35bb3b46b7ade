// Where the shared test data lives (../shared/data beside the repository), for tests that skip
// cleanly when it is absent.
import { existsSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHARED_DATA = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../shared/data');
export const hasSharedData = existsSync(SHARED_DATA);
export const sharedPath = (...p: string[]) => join(SHARED_DATA, ...p);
export const SKIP_MESSAGE = `../shared/data not found at ${SHARED_DATA}: tests that need the shared models and text are skipped`;
