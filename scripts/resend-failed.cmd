@echo off
rem For station staff: queue every failed or dead package again, send now, show the status and end
rem with a verdict in plain words.
rem Usage: resend-failed.cmd [path\to\sprelay.yaml]
rem Config: the argument, else %SPRELAY_CONFIG%, else sprelay.yaml beside the app folder (the
rem README's layout: C:\sprelay\sprelay.yaml next to C:\sprelay\app), else sprelay.yaml in the app
rem folder (the one holding bin\ and scripts\). Node: %SPRELAY_NODE%, else node.exe in the app
rem folder, else node on PATH. Exit code: 1 when resend fails, else that of `once` (0 ok,
rem 2 attention, 1 error). SPRELAY_NO_PAUSE=1 skips the closing pause.
setlocal
for %%I in ("%~dp0..") do set "APP=%%~fI"
for %%I in ("%APP%\..") do set "ABOVE=%%~fI"
set "CFG=%APP%\sprelay.yaml"
if exist "%ABOVE%\sprelay.yaml" set "CFG=%ABOVE%\sprelay.yaml"
if defined SPRELAY_CONFIG set "CFG=%SPRELAY_CONFIG%"
if not "%~1"=="" set "CFG=%~1"
set "NODE=node"
if exist "%APP%\node.exe" set "NODE=%APP%\node.exe"
if defined SPRELAY_NODE set "NODE=%SPRELAY_NODE%"

"%NODE%" "%APP%\bin\sprelay.js" --config "%CFG%" resend --failed
if errorlevel 1 goto resendfailed
"%NODE%" "%APP%\bin\sprelay.js" --config "%CFG%" once
set "RC=%ERRORLEVEL%"
"%NODE%" "%APP%\bin\sprelay.js" --config "%CFG%" status
echo.
if "%RC%"=="0" goto verdict
if "%RC%"=="2" goto verdict
echo RESULT: ERROR - sprelay could not run (exit code %RC%). Call IT support.
goto done
:verdict
"%NODE%" "%APP%\bin\sprelay.js" --config "%CFG%" status --brief
goto done
:resendfailed
set "RC=1"
echo.
echo RESULT: ERROR - the failed packages could not be queued again (see above). Call IT support.
:done
rem keep the window open when started by a double click
if not defined SPRELAY_NO_PAUSE pause
exit /b %RC%
