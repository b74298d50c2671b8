// The commented sprelay.yaml that `sprelay init DIR` writes. As written it works with no server at
// all: the "office" is a plain folder next to the config (a `lan` profile), so `sprelay once` can be
// tried at once. Examples for e-mail, FTP, SFTP and a real share are there to uncomment.

import { flatLine } from '../transports/common/text.js';

/** A ready-to-run, commented sprelay.yaml for a config placed in `dir`. */
export function configTemplate(dir: string): string {
  const where = flatLine(dir);
  return `# sprelay configuration for this station (written by "sprelay init" in ${where}).
# Relative paths are relative to this file's folder. \${NAME} is replaced from the environment:
# keep passwords out of this file (set them as environment variables instead).
# As written it needs no server: "office-share" is a plain folder next to this file standing in for
# the office share. Try "sprelay check", then "sprelay once".

station: DEMO-001            # this station's name, put into every e-mail subject: CHANGE IT (letters, digits, . _ -)
lang: en                     # language of status and the resend script for station staff: en | ru | uk
dataDir: ./data              # ledger, spool, archive and quarantine are kept here
log:
  level: info                # trace | debug | info | warn | error
  file: ./data/logs/sprelay.log   # also write the log to this file (Task Scheduler runs have no console)

# Defaults for every route (any of them may also be set on one route), uncomment to change:
# settle: 2s                 # a file must stay unchanged this long before it is taken
# clockSkew: 15m             # in-routes: how far a server's clock may be behind; older remote files are taken at once ("off": look twice)
# maxSize: 50MB              # larger packages are refused (out) or quarantined (in)
# timeout: 60s               # a network operation making no progress for this long is aborted
# minRate: 1KB/s             # a transfer slower than this on average over 60s (or timeout, if longer) is cut and retried; 0 = off
# concurrency: 4             # parallel transfers per route (1..16); default lan 4, ftp 4, sftp 8; e-mail: out 1, in 16
# overwrite: false           # true: replace a remote file of the same name instead of failing
# retry: { maxAttempts: 10, baseDelay: 1m, maxDelay: 1h }   # attempts per package, first and longest wait between them
# maxPerCycle: 500           # in-routes: remote files or messages taken per cycle at most (a flood waits its turn)

# What dataDir/quarantine may hold (all routes); over it a refused package is recorded but its file not kept:
# quarantine: { maxSize: 1GB, maxCount: 1000 }

# Heartbeat: with a sprelay at head office too, send it a small status snapshot (version, counts per
# route, oldest unsent, last errors, free disk) over this out-route this often (at least 1m); uncomment to use:
# heartbeat: { route: export, every: 1h }

# Limits of the XML and zip package checks (the defaults suit SERVIO and 1C packages), uncomment to change:
# check:
#   xml: { maxDepth: 64, maxAttributes: 1000, maxNameLength: 256, maxAttributeLength: 16MB, maxTextLength: 32MB, maxNodesPerMB: 250000 }
#   zip: { maxUncompressed: 1GB, maxRatio: 500, maxEntries: 10000 }

profiles:                    # named connections; routes refer to them by name
  office-share:
    type: lan                # lan | ftp | sftp | email
    root: ./office-share     # the share: UNC path, mapped drive or mounted folder (here a local demo folder)

  # Example e-mail profile, uncomment to use:
  # office-mail:
  #   type: email
  #   from: azs017@example.com   # sender address of outgoing packages
  #   smtp: { host: mail.example.com, port: 587, security: starttls, user: azs017, password: \${SMTP_PASSWORD} }   # sending server; security none | starttls | tls
  #   imap: { host: mail.example.com, port: 993, security: tls, user: azs017, password: \${IMAP_PASSWORD} }        # receiving server
  #   tls: { ca: ./office-ca.pem, rejectUnauthorized: true }   # extra CA to trust (optional); never turn verification off
  #   # maxPerMessage: 1         # packages attached to one e-mail (up to 100; a bundle stays within the route's maxSize in all)

  # Example FTP profile, uncomment to use:
  # office-ftp:
  #   type: ftp
  #   host: ftp.example.com      # server name or address
  #   port: 21                   # 21 (990 for implicit)
  #   security: explicit         # none | explicit | implicit (explicit = FTPS via AUTH TLS)
  #   user: azs017               # login
  #   password: \${FTP_PASSWORD}  # from the environment, never written here
  #   # encoding: utf8           # utf8 | cp1251: how the server spells file names

  # Example SFTP profile, uncomment to use:
  # office-sftp:
  #   type: sftp
  #   host: sftp.example.com     # server name or address
  #   port: 22                   # SSH port
  #   user: azs017               # login
  #   privateKey: ./id_ed25519   # key file (or password: \${SFTP_PASSWORD})
  #   hostKey: SHA256:...        # required: the server key fingerprint (ssh-keyscan HOST | ssh-keygen -lf -); \`any\` only when written explicitly

  # Example share on the office server, uncomment to use:
  # office-lan:
  #   type: lan
  #   root: \\\\OFFICE\\exchange       # any path the OS can open: UNC, mapped drive, mounted share

routes:                      # each route: one direction, one profile, one local folder, one schedule
  - name: export             # unique name (letters, digits, . _ -); used in folder and log names
    direction: out           # out: local outbox -> remote
    profile: office-share    # which profile above carries it
    local: ./outbox          # where SERVIO PUMP GAS writes its exports
    remote: from-station     # folder under the profile root that head office collects from
    include: ["*.xml", "*.zip"]   # which files are packages (case-insensitive)
    schedule: "* * * * *"    # node-cron: every minute (5 fields, or 6 with seconds first)
    afterSend: archive       # archive | delete: keep a copy under dataDir/archive once sent, or not

  - name: import
    direction: in            # in: remote -> local inbox
    profile: office-share
    remote: to-station       # folder under the profile root that head office fills
    local: ./inbox           # where SERVIO PUMP GAS imports from
    schedule: "* * * * *"    # every minute
    afterReceive: delete     # delete | move:<folder or mailbox>: what happens to the remote copy once delivered

  # Example SFTP out-route, uncomment to use:
  # - name: export-sftp
  #   direction: out
  #   profile: office-sftp
  #   local: C:\\ServioPump\\Export   # the outbox
  #   remote: /in/azs017            # email: \`to: [office@example.com]\` instead
  #   include: ["*.xml", "*.zip"]   # which files are packages
  #   schedule: "*/5 * * * *"       # node-cron syntax: every 5 minutes
  #   afterSend: archive            # archive | delete  (the outbox copy is always removed once spooled)
  #   confirmWithin: 1d             # with a sprelay at head office: a package sent and not confirmed by its receipt within this is a problem (off when absent)

  # Example e-mail in-route, uncomment to use:
  # - name: import-mail
  #   direction: in
  #   profile: office-mail
  #   remote: INBOX                 # email: mailbox; ftp/sftp/lan: directory
  #   local: C:\\ServioPump\\Import   # the inbox
  #   allowFrom: [office@example.com]   # email only; required for email in-routes
  #   afterReceive: delete          # delete | move:<remote dir or mailbox>
  #   afterRefuse: leave            # email only: leave | move:<mailbox>: a refused message (sender not allowed, no package attached) is recorded, never delivered, and left or moved
  #   requireAuth: dkim             # email only: take a message only with a valid DKIM signature of the sender's domain (allowFrom alone can be forged)
  #   schedule: "*/10 * * * *"      # every 10 minutes
`;
}
