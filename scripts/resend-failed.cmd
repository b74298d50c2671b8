@echo off
rem For station staff: queue every failed or dead package again, send now, and show the status.
rem Usage: resend-failed.cmd [path\to\sprelay.yaml]
rem (config: the argument, else %SPRELAY_CONFIG%, else sprelay.yaml in the sprelay folder)
setlocal
set "HERE=%~dp0.."
set "CFG=%HERE%\sprelay.yaml"
if defined SPRELAY_CONFIG set "CFG=%SPRELAY_CONFIG%"
if not "%~1"=="" set "CFG=%~1"

node "%HERE%\bin\sprelay.js" --config "%CFG%" resend --failed
if errorlevel 1 goto done
node "%HERE%\bin\sprelay.js" --config "%CFG%" once
set "RC=%ERRORLEVEL%"
node "%HERE%\bin\sprelay.js" --config "%CFG%" status
:done
if not defined RC set "RC=%ERRORLEVEL%"
rem keep the window open when started by a double click
if not defined SPRELAY_NO_PAUSE pause
exit /b %RC%
