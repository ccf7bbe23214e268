// berth's version, from package.json (the one source of truth).
import * as pkg from '../package.json';

export const BERTH_VERSION: string = pkg.version;
export const RUNTIME_NAME = 'berth';
export const CRI_API_VERSION = 'v1';
