# For station staff: queue every failed or dead package again, send now, and show the status.
# Usage: powershell -ExecutionPolicy Bypass -File resend-failed.ps1 [path\to\sprelay.yaml]
# (config: the argument, else $env:SPRELAY_CONFIG, else sprelay.yaml in the sprelay folder)
param([string]$Config)
$here = Split-Path -Parent $PSScriptRoot
if (-not $Config) { $Config = if ($env:SPRELAY_CONFIG) { $env:SPRELAY_CONFIG } else { Join-Path $here 'sprelay.yaml' } }
$bin = Join-Path $here 'bin\sprelay.js'

& node $bin --config $Config resend --failed
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
& node $bin --config $Config once
$rc = $LASTEXITCODE
& node $bin --config $Config status
exit $rc
