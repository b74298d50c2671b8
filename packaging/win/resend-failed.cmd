@echo off
rem For station staff (double-click): send every failed package again, run one cycle now, show the status.
rem Usage: resend-failed.cmd [path\to\sprelay.yaml]
rem Config: the argument, else %SPRELAY_CONFIG%, else sprelay.yaml beside this file.
rem Exit code: 0 all went well, 2 some package still needs attention, 1 sprelay could not run.
rem The window stays open at the end (pause) unless SPRELAY_NO_PAUSE is set.
setlocal
if not defined SPRELAY_CONFIG set "SPRELAY_CONFIG=%~dp0sprelay.yaml"
if not "%~1"=="" set "SPRELAY_CONFIG=%~1"
call "%~dp0sprelay.cmd" resend --failed
if errorlevel 1 goto notqueued
call "%~dp0sprelay.cmd" once
set "RC=%ERRORLEVEL%"
call "%~dp0sprelay.cmd" status
echo.
if "%RC%"=="0" goto verdict
if "%RC%"=="2" goto verdict
echo RESULT: ERROR - sprelay could not run (exit code %RC%). Call IT support.
goto end
:notqueued
set "RC=1"
echo.
echo RESULT: ERROR - the failed packages could not be queued again (see above). Call IT support.
goto end
:verdict
rem the last words in the station's language (lang: in sprelay.yaml), written by sprelay itself:
rem a batch file cannot hold Cyrillic text safely (cmd reads it in the OEM code page)
call "%~dp0sprelay.cmd" status --brief
:end
if not defined SPRELAY_NO_PAUSE pause
exit /b %RC%
