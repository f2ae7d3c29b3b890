import type { PathFilter } from '../actions/path-filter.js';
import { unsafePathReason } from '../actions/safe-relative-path.js';
import { isTemporaryName } from '../actions/temporary-name.js';
import type { StorageEntry } from '../storage/storage.js';

export interface SelectionRules {
  pathFilter: PathFilter;
  minAgeMs: number;
  minSizeBytes?: number;
  maxSizeBytes?: number;
  followLinks: boolean;
  /** With `verify: sidecar`, `.sha256` files are checksums, not data. */
  sidecars: boolean;
  nowMs: number;
}

/**
 * Why an entry is not fetched. `warn` reasons are told to the operator (something
 * at the source looks wrong or needs a decision); the others are ordinary filtering.
 */
export type SkipReason =
  | {
      reason:
        | 'folder'
        | 'not-a-file'
        | 'not-matched'
        | 'sidecar'
        | 'temporary'
        | 'too-young'
        | 'too-small'
        | 'too-large';
      warn: false;
    }
  | { reason: 'unsafe-name' | 'link-not-followed'; warn: true; detail: string };

export type Selection = { take: true; followLink: boolean } | ({ take: false } & SkipReason);

/** Decides about one listed entry, before the ledger is asked. Pure. */
export function selectRemoteEntry(entry: StorageEntry, rules: SelectionRules): Selection {
  if (entry.type === 'dir') return { take: false, reason: 'folder', warn: false };
  if (entry.type === 'other') return { take: false, reason: 'not-a-file', warn: false };
  const unsafe = unsafePathReason(entry.relPath) ?? undecodableNameReason(entry.relPath);
  if (unsafe) return { take: false, reason: 'unsafe-name', warn: true, detail: unsafe };
  if (isTemporaryName(entry.name)) return { take: false, reason: 'temporary', warn: false };
  if (rules.sidecars && entry.name.endsWith('.sha256'))
    return { take: false, reason: 'sidecar', warn: false };
  if (!rules.pathFilter(entry.relPath)) return { take: false, reason: 'not-matched', warn: false };
  if (entry.type === 'link') {
    if (!rules.followLinks) {
      return {
        take: false,
        reason: 'link-not-followed',
        warn: true,
        detail: 'a link (set follow_links: true to fetch its target)',
      };
    }
    // Size, age and where it points are checked once the link is resolved.
    return { take: true, followLink: true };
  }
  return checkSizeAndAge(entry, rules) ?? { take: true, followLink: false };
}

/**
 * Names that are not valid UTF-8 reach us with U+FFFD in place of the bad bytes, and
 * the server knows no file by that name: it could never be fetched, only fail on every
 * pass. Skipped with a warning instead.
 */
function undecodableNameReason(relPath: string): string | undefined {
  return relPath.includes('\uFFFD') ? 'a name that is not valid UTF-8 (rename it at the source)' : undefined;
}

/** Age and size rules, also applied to a link's target once resolved. */
export function checkSizeAndAge(
  file: { sizeBytes: number; mtimeMs: number },
  rules: SelectionRules,
): (Selection & { take: false }) | undefined {
  if (rules.nowMs - file.mtimeMs < rules.minAgeMs) return { take: false, reason: 'too-young', warn: false };
  if (rules.minSizeBytes !== undefined && file.sizeBytes < rules.minSizeBytes) {
    return { take: false, reason: 'too-small', warn: false };
  }
  if (rules.maxSizeBytes !== undefined && file.sizeBytes > rules.maxSizeBytes) {
    return { take: false, reason: 'too-large', warn: false };
  }
  return undefined;
}
