/**
 * The reliability scenarios: one row per fault the suite puts the pipeline through.
 * Every test in test/faults/ names its scenario by id (`scenarioTitle(id)`), and
 * docs/reliability.md is generated from this list (`npm run docs:reliability`); a
 * test fails when the doc, the tests or this list disagree.
 */

export interface Scenario {
  id: string;
  /** The test's title. */
  title: string;
  /** The test file (below test/faults/) that runs it. */
  file: string;
  /** What is done to the pipeline. */
  done: string;
  /** What the pipeline does about it (what the test asserts). */
  does: string;
  /** A bug this scenario found when it was written, and the fix. */
  found?: string;
}

export const SCENARIOS: readonly Scenario[] = [
  // ---- the network (through a TCP proxy on 127.0.0.1) ----
  {
    id: 'cut-handshake',
    title: 'connection cut during the SSH handshake',
    file: 'network-faults.test.ts',
    done: 'The proxy resets the connection after 600 bytes from the server (mid key exchange), once.',
    does: 'With `retries: 0` the source fails with `E_CONNECTION` naming `user@host:port` and a hint, exit 1, nothing fetched; the next pass fetches every file once.',
  },
  {
    id: 'cut-listing',
    title: 'connection cut in the middle of a listing',
    file: 'network-faults.test.ts',
    done: 'The proxy resets the connection halfway through the bytes of listing a 3,000-entry folder, once.',
    does: 'The source fails with `E_CONNECTION` naming the host and the folder, exit 1, nothing fetched or deleted; the next pass fetches every file once.',
    found:
      'A dropped connection failed a listing or a download with only `connection to user@host:port ended`: no file, no folder. Requests failed by a broken session now say what and where (`list of /out failed: connection to … ended`) — `brokenRequestError` in `src/storage/sftp/sftp-session.ts`, used by every request, download and upload.',
  },
  {
    id: 'cut-mid-file',
    title: 'connection cut after N bytes of a file, at several points',
    file: 'network-faults.test.ts',
    done: 'The proxy resets the connection at 2%, 50% and 98% of a 3 MiB download (server → client), and at 50% of the request bytes (client → server); `after_fetch: delete`, `retries: 0`.',
    does: 'Each time: the file fails with `E_CONNECTION` naming host and path with a hint, exit 1, its temporary is removed, the remote file is kept; the next pass fetches it once with the right sha256 and only then deletes it.',
    found: "The same message without the file's path (see `cut-listing`); fixed there.",
  },
  {
    id: 'cut-retried',
    title: 'connection cut mid-file is retried within the pass',
    file: 'network-faults.test.ts',
    done: 'The proxy resets the connection at 50% of the second of three files; `retries: 2`.',
    does: 'A warning names the retry; the pass reconnects and ends with exit 0, every file once, no temporary.',
  },
  {
    id: 'corrupt-in-transit',
    title: 'a bit flipped in transit mid-file',
    file: 'network-faults.test.ts',
    done: 'The proxy flips one bit halfway through a 3 MiB download (a faulty link or middlebox); `after_fetch: delete`, `retries: 0`.',
    does: "SSH's integrity check catches it: the file fails with `E_CONNECTION` saying the data arrived corrupted, naming host and path, exit 1; nothing corrupted is kept, the remote file is kept; the next pass fetches it once with the right sha256.",
    found:
      "A corrupted packet was reported as `connection to … failed: error:00000000:lib(0)::reason(0)` (OpenSSL's bare words). It now says `data arrived corrupted` with a hint about the network path (`src/storage/sftp/sftp-session.ts`).",
  },
  {
    id: 'stall-connect',
    title: 'a proxy that accepts and then sends nothing',
    file: 'network-faults.test.ts',
    done: 'The proxy accepts the TCP connection and never answers; `connect_timeout: 2s`, `retries: 1`.',
    does: 'The pass gives up with `E_TIMEOUT` naming the host and "raise connect_timeout" within the timeouts (< 10 s), exit 1; nothing fetched; the next pass, with the proxy healed, fetches.',
  },
  {
    id: 'freeze-mid-file',
    title: 'a connection that freezes mid-file',
    file: 'network-faults.test.ts',
    done: 'The proxy stops passing bytes both ways (no close) while a slow download runs; `operation_timeout: 2s`.',
    does: 'The transfer fails with `E_TIMEOUT` within the timeouts (< 15 s), no hang; exit 1, no temporary, remote kept; the next pass fetches the file once.',
  },
  {
    id: 'sshd-restart',
    title: 'sshd stopped mid-pass and started again between passes',
    file: 'network-faults.test.ts',
    done: 'A looping fetcher (`--stop-on-loop 3`, `after_fetch: delete`) loses sshd (listener and sessions killed) after its first files; sshd comes back before the next pass.',
    does: 'Pass 1 fails the source with `E_CONNECTION` (remaining files wait, none deleted without its copy); the same process reconnects on the next pass and fetches the rest: every file once, exit 0.',
  },
  // ---- signals ----
  {
    id: 'sigterm-mid-transfer',
    title: 'SIGTERM mid-transfer',
    file: 'signals.test.ts',
    done: 'SIGTERM while a slow download is in flight; `shutdown_grace: 1s`.',
    does: 'No new file starts, the transfer is aborted after the grace, exit 130, no temporary, the remote file kept; the next run fetches everything once.',
  },
  {
    id: 'sigkill-mid-transfer',
    title: 'SIGKILL mid-transfer',
    file: 'signals.test.ts',
    done: 'SIGKILL while a download is half written (`after_fetch: delete`).',
    does: 'Only a temporary is left (no half file under a real name), the remote file kept; the next run removes the temporary and fetches everything once, then deletes remotely.',
  },
  {
    id: 'sigterm-mid-archive',
    title: 'SIGTERM mid-archive',
    file: 'signals.test.ts',
    done: 'The fetcher is frozen (SIGSTOP) the instant its archive copy appears, sent SIGTERM, and let go.',
    does: 'The file in flight is finished within the grace (incoming and archive both whole) or left for the next run, exit 130; no temporary; the next run fetches only what is missing.',
  },
  {
    id: 'sigkill-mid-archive',
    title: 'SIGKILL mid-archive',
    file: 'signals.test.ts',
    done: 'The fetcher is frozen (SIGSTOP) the instant its archive copy appears, then SIGKILLed (`after_fetch: delete`).',
    does: 'Only temporaries are left in incoming and archive, no ledger record, remote kept; the next run cleans them and fetches the file once into both.',
  },
  {
    id: 'sigkill-copier-mid-copy',
    title: 'SIGKILL of the copier mid-copy',
    file: 'signals.test.ts',
    done: 'The copier (two destinations, `verify: sha256`) is killed while it copies a 96 MiB file to one of them.',
    does: 'The file stays in incoming (it leaves only once every destination holds it), no temporary is visible under a real name; the next run delivers it once to each destination and then removes it from incoming.',
  },
  // ---- local disks ----
  {
    id: 'disk-reserve',
    title: 'incoming below the free-space reserve',
    file: 'local-faults.test.ts',
    done: '`min_free_space` is set 1 GiB above what `statfs` reports free on the test file system.',
    does: 'No download starts: the source fails with `E_DISK_FULL` naming incoming and the free space with a hint, exit 1; with the reserve lowered, the next pass fetches everything once.',
  },
  {
    id: 'destination-vanishes',
    title: 'a destination folder removed mid-pass',
    file: 'local-faults.test.ts',
    done: 'One destination folder is moved away and deleted (`rm -rf`) after 20 of 150 files landed in it, while the copier delivers to it and to a second one.',
    does: 'Nothing leaves incoming before both destinations hold it; the copier makes the folder again and delivers the rest into it (a file caught between rename and folder sync fails and waits); after the next run every file is once in the stable destination, the waiting ones in the new folder, incoming empty.',
  },
  {
    id: 'destination-replaced-by-file',
    title: 'a destination replaced by a file mid-pass',
    file: 'local-faults.test.ts',
    done: 'One destination folder is replaced by a plain file while the copier runs.',
    does: 'That destination is down for the pass: one error line naming its path with a hint (not one per file), exit 1; the other destination gets every file; the files wait in incoming; once the folder is back the next pass delivers them and empties incoming.',
    found:
      'Every remaining file logged its own `cannot deliver: E_EXISTS: mkdirp failed` line (130 in this test). A destination whose own folder is no longer a folder is now down for the pass like a denied one: one line, files wait (`src/controllers/copy-pass.ts`).',
  },
  {
    id: 'modes-configured',
    title: 'created files and folders get file_mode and dir_mode',
    file: 'local-faults.test.ts',
    done: 'Fetcher, copier and mirror run with `file_mode: "0640"`, `dir_mode: "0750"` under a umask of 077; one remote file has mode 0777.',
    does: 'Every file created in incoming, archive, destinations and the replica is exactly 0640 and every folder exactly 0750.',
    found:
      '`dir_mode` went through the umask (folders were 0700 under umask 077, not 0750). The local `mkdirp` now sets the exact mode on the folders it creates (`src/storage/local-storage.ts`).',
  },
  {
    id: 'modes-umask',
    title: 'without file_mode, modes come from the umask and are never wider',
    file: 'local-faults.test.ts',
    done: 'The same pipeline without `file_mode`/`dir_mode`, under a umask of 027; one remote file has mode 0777.',
    does: 'No created file is wider than 0640 and no folder wider than 0750; the 0777 remote file is not 0777 locally.',
  },
  // ---- the remote side ----
  {
    id: 'remote-truncated',
    title: 'a remote file truncated between listing and download',
    file: 'remote-changes.test.ts',
    done: 'After the listing, while an earlier file downloads, the partner truncates a listed file.',
    does: 'It is not committed (`E_CHANGED`: skipped, no temporary, nothing deleted), the others are fetched, exit 0; the next pass fetches its new content once.',
  },
  {
    id: 'remote-grows',
    title: 'a remote file that grows between listing and download',
    file: 'remote-changes.test.ts',
    done: 'After the listing, the partner appends to a listed file (and sets its old mtime back).',
    does: 'The size check refuses it (`E_CHANGED`, skipped), exit 0; the next pass fetches the grown file once.',
  },
  {
    id: 'remote-deleted',
    title: 'a remote file deleted between listing and download',
    file: 'remote-changes.test.ts',
    done: 'After the listing, the partner deletes a listed file.',
    does: 'It is skipped as gone from the server (not a failure), the others are fetched, exit 0, no temporary.',
  },
  {
    id: 'permission-file',
    title: 'permission denied on one remote file',
    file: 'remote-changes.test.ts',
    done: 'As a non-root login user, one remote file has mode 000 (`after_fetch: delete`).',
    does: 'That file fails with `E_PERMISSION` naming host and path with a hint, exit 1; every other file is fetched (and deleted); the denied file is kept and never fetched half.',
  },
  {
    id: 'permission-folder',
    title: 'permission denied on one remote folder',
    file: 'remote-changes.test.ts',
    done: 'As a non-root login user, one subfolder of a recursive source has mode 000.',
    does: 'The folder is reported with `E_PERMISSION` naming host and folder, exit 1; the files of every other folder are fetched.',
    found:
      'An unreadable remote folder failed the pass (exit 1) but was logged as a warning, so it was missing from `all-error.log`. It is an error line now (`src/controllers/list-fetch-candidates.ts`).',
  },
  {
    id: 'name-255-bytes',
    title: 'a remote name of 255 bytes',
    file: 'remote-changes.test.ts',
    done: 'A file whose name is 255 bytes of UTF-8 (multi-byte characters included) is fetched, archived and copied; then the partner replaces it and it goes through again.',
    does: 'It arrives under its full name in incoming, archive and the destination, right sha256, temporaries within the 255-byte limit and gone; the new version replaces it in the destination and the archive keeps both, the older one renamed with a suffix that still fits in 255 bytes.',
    found:
      "When a file with a long name changed, the archive's keep-both suffix (`name.2026-11-21T101500Z.csv`) passed 255 bytes: ENAMETOOLONG on every pass, forever. Suffixed and numbered names now shorten the stem to fit (`withStemSuffix` in `src/actions/numbered-name.ts`, with `truncateUtf8` moved to its own module).",
  },
  {
    id: 'names-unicode-normalisation',
    title: 'names that differ only in Unicode normalisation',
    file: 'remote-changes.test.ts',
    done: 'Two remote files, `café.csv` in NFC and in NFD, with different contents.',
    does: 'Both are fetched and copied as two files, each with its own sha256; neither overwrites the other.',
  },
  {
    id: 'names-odd-characters',
    title: 'names with newline, backslash and colon',
    file: 'remote-changes.test.ts',
    done: 'Remote files named `a\\b.csv`, `c:d.csv` and `e<newline>f.csv`.',
    does: 'The backslash and colon names are fetched and copied as they are; the newline name is refused with a warning naming the reason (a skip, not a failure, exit 0).',
  },
  {
    id: 'link-loop',
    title: 'a link loop on the remote',
    file: 'remote-changes.test.ts',
    done: 'Remote links `loop-a → loop-b → loop-a` and `sub/up → ..` in a recursive source with `follow_links: true`.',
    does: 'The listing ends (no endless walk), the loop and the folder link are skipped with a warning, the real files are fetched once, exit 0.',
  },
  {
    id: 'hundred-thousand-entries',
    title: '100,000 entries in one remote folder',
    file: 'big-folder.test.ts',
    done: 'One remote folder holds 100,000 small files; a `--dry-run` lists them all, then a real pass with `max_files_per_pass: 300`.',
    does: 'Both listings complete (100,000 listed and selected); the dry run plans the 300 a pass would take and changes nothing; the real pass fetches those 300 and leaves 99,700 waiting; the peak RSS (VmHWM) of each process stays under 300 MiB.',
  },
  // ---- security ----
  {
    id: 'host-key-changed',
    title: 'host key changed between passes',
    file: 'security.test.ts',
    done: 'After a good pass the server gets a new host key; new remote files are waiting.',
    does: 'The source is refused with `E_HOSTKEY` naming both fingerprints, exit 1, nothing fetched, every pass until `known_hosts` is updated; then the next pass fetches.',
  },
  {
    id: 'secrets-never-logged',
    title: 'secrets never reach a log, an error or --dry-run output',
    file: 'security.test.ts',
    done: 'Password login (a system user) and an encrypted key (known passphrase) run `--dry-run` at `-v`, `-vv`, `-vvv` and a real pass at `-vvv`; the copier delivers to an SFTP destination with the password (dry run and real, `-vvv`); then a wrong password and a wrong passphrase.',
    does: 'Neither password, passphrase (right or wrong) nor any line of the private key appears in any file of either `log_dir`, on stdout or stderr; the failures are `E_AUTH` with a hint, naming the host (password) or the key file (passphrase). (Every other scenario greps its logs the same way.)',
  },
  // ---- configuration ----
  {
    id: 'config-fuzzer',
    title: 'config fuzzer: seeded mutations of every example config',
    file: 'config-fuzzer.test.ts',
    done: 'Thousands of seeded mutations (deleted, duplicated, unknown keys, changed types, garbage unicode, bad indents, truncation, swapped values, empty and huge values, `${UNSET}`) of `etc/*.yml` and `etc/examples/*.yml`, loaded in-process; a sample run through the real CLI with `--dry-run`.',
    does: 'Never a stack trace: each mutant loads, or fails with `E_CONFIG` whose every line is `FILE: key.path: message` or `FILE:line:col: …`; the CLI exits 2 with one problem per line, or runs without an internal error.',
    found:
      'Four: (1) a YAML alias that contains itself (`a: &x [*x]`) overflowed the stack — exit 70 with a trace; now `E_CONFIG` naming the key (`src/config/find-alias-loop.ts`). (2) A YAML syntax error, an empty or unreadable file printed its problem twice (the headline was the problem); the headline is now `FILE: 1 problem in the configuration` (`src/config/load-config.ts`). (3) A key with an invisible character (a BOM, a zero-width space) printed as a correct-looking key (`sources: unknown key; did you mean "sources"?`); such keys are now quoted with the characters escaped (`src/config/key-path.ts`). (4) `--dry-run` with a `schedule` waited for the next cron slot (up to minutes) before planning; a dry run now plans at once (`src/apps/run-passes.ts`).',
  },
];

const BY_ID = new Map(SCENARIOS.map((scenario) => [scenario.id, scenario]));

export function scenario(id: string): Scenario {
  const found = BY_ID.get(id);
  if (!found) throw new Error(`no scenario "${id}" in test/faults/scenarios.ts`);
  return found;
}

/** The title of a scenario, for `it(scenarioTitle('…'), …)`. */
export function scenarioTitle(id: string): string {
  return `${id}: ${scenario(id).title}`;
}
