@echo off
rem sprelay, portable bundle: runs the bundled Node.js on the bundled app; arguments are passed through.
rem Config: --config FILE, else %SPRELAY_CONFIG%, else sprelay.yaml beside this file.
rem Exit code: sprelay's (once: 0 ok, 2 some package needs attention, 1 fatal error).
rem --disable-warning=ExperimentalWarning: node:sqlite (the ledger here) is "experimental" in Node 22.
setlocal
if not defined SPRELAY_CONFIG set "SPRELAY_CONFIG=%~dp0sprelay.yaml"
"%~dp0app\node.exe" --disable-warning=ExperimentalWarning "%~dp0app\sprelay.mjs" %*
exit /b %ERRORLEVEL%
