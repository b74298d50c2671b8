# For station staff: queue every failed or dead package again, send now, show the status and end
# with a verdict in plain words (in the config's lang).
# Usage: powershell -ExecutionPolicy Bypass -File resend-failed.ps1 [path\to\sprelay.yaml]
# Config: the argument, else $env:SPRELAY_CONFIG, else sprelay.yaml beside the app folder (the
# README's layout: C:\sprelay\sprelay.yaml next to C:\sprelay\app), else sprelay.yaml in the app folder.
# Node: $env:SPRELAY_NODE, else node.exe in the app folder, else node on PATH.
# Exit code: 1 when resend fails, else that of `once` (0 ok, 2 attention, 1 error).
# The window stays open at the end unless $env:SPRELAY_NO_PAUSE is set.
# Not run by any test here: Wine has no PowerShell. resend-failed.cmd is the tested one.
param([string]$Config)
$app = Split-Path -Parent $PSScriptRoot
$above = Split-Path -Parent $app
if (-not $Config) {
  if ($env:SPRELAY_CONFIG) { $Config = $env:SPRELAY_CONFIG }
  elseif (Test-Path (Join-Path $above 'sprelay.yaml')) { $Config = Join-Path $above 'sprelay.yaml' }
  else { $Config = Join-Path $app 'sprelay.yaml' }
}
$node = 'node'
if (Test-Path (Join-Path $app 'node.exe')) { $node = Join-Path $app 'node.exe' }
if ($env:SPRELAY_NODE) { $node = $env:SPRELAY_NODE }
$bin = Join-Path $app 'bin\sprelay.js'
# node writes UTF-8: show Cyrillic verdicts as they are
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8

function Finish([int]$code) {
  if (-not $env:SPRELAY_NO_PAUSE) { Read-Host 'Press Enter to close' | Out-Null }
  exit $code
}

& $node $bin --config $Config resend --failed
if ($LASTEXITCODE -ne 0) {
  Write-Output ''
  Write-Output 'RESULT: ERROR - the failed packages could not be queued again (see above). Call IT support.'
  Finish 1
}
& $node $bin --config $Config once
$rc = $LASTEXITCODE
& $node $bin --config $Config status
Write-Output ''
if ($rc -eq 0 -or $rc -eq 2) { & $node $bin --config $Config status --brief }
else { Write-Output "RESULT: ERROR - sprelay could not run (exit code $rc). Call IT support." }
Finish $rc
