// Paths and files: where the config file is, how relative paths resolve (against the config's
// folder), lan-relative folders, folder identity, and fs errors in plain words.
import path from 'node:path';

// ---- config file location ------------------------------------------------------------------------

/** `--config` wins, then $SPRELAY_CONFIG, then ./sprelay.yaml; relative paths against `cwd`. */
export function resolveConfigPath(cliPath: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string {
  const chosen = cliPath?.trim() ? cliPath : env.SPRELAY_CONFIG?.trim() ? env.SPRELAY_CONFIG : 'sprelay.yaml';
  return resolveLocalPath(chosen, cwd);
}

// ---- paths and files -----------------------------------------------------------------------------

/** Absolute by the rules of this OS or of Windows (UNC `\\srv\share`, `C:\dir`): kept verbatim. */
function isAbsoluteAnyOS(p: string): boolean {
  return path.isAbsolute(p) || path.win32.isAbsolute(p);
}

/** Relative paths resolve against the config file's folder (Task Scheduler starts in System32). */
export function resolveLocalPath(p: string, baseDir: string): string {
  return isAbsoluteAnyOS(p) ? p : path.resolve(baseDir, p);
}

export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'file not found';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a folder, not a file';
    default:
      return code ? `cannot be read (${code})` : 'cannot be read';
  }
}

/** Why a lan `remote` / move target is unusable, or undefined. It must stay under the share root. */
export function lanRelativeProblem(p: string): string | undefined {
  if (isAbsoluteAnyOS(p) || /^[A-Za-z]:/.test(p))
    return 'must be a folder relative to the profile root, not an absolute path';
  if (p.split(/[\\/]+/).includes('..')) return 'must not contain ".." (it must stay under the profile root)';
  return undefined;
}

/** `./a/b/`, `a\b` -> `a/b`; `''`, `.` -> `''` (the root). */
export function normalizeLanRelative(p: string): string {
  return p
    .split(/[\\/]+/)
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function looksLikeKeyText(s: string): boolean {
  const t = s.trimStart();
  return t.startsWith('-----BEGIN') || t.startsWith('PuTTY-User-Key-File-');
}

/** Folder identity for "same folder" checks: Windows-style paths compare case-insensitively. */
export function folderKey(p: string): string {
  const winStyle = path.win32.isAbsolute(p) && !path.posix.isAbsolute(p);
  return winStyle
    ? path.win32.normalize(p).replace(/\\+$/, '').toLowerCase()
    : path.posix.normalize(p).replace(/\/+$/, '');
}
