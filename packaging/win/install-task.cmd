@echo off
rem Registers the Task Scheduler task "sprelay" for the folder this file is in: "sprelay.cmd once"
rem every 5 minutes, whether a user is logged on or not. Run it as administrator.
rem Usage: install-task.cmd [COMPUTER\user | SYSTEM]   (default: the current user)
rem It first rewrites sprelay-task.xml for this folder, then runs schtasks, which asks for the
rem user's password (Windows keeps it for the task; the task uses that user's access to the share).
rem The window stays open at the end (pause) unless SPRELAY_NO_PAUSE is set.
setlocal
set "TASKUSER=%~1"
if "%TASKUSER%"=="" set "TASKUSER=%USERDOMAIN%\%USERNAME%"
"%~dp0app\node.exe" "%~dp0app\install-task.mjs" "%~dp0." "%~dp0sprelay-task.xml"
if errorlevel 1 goto failed
schtasks /create /tn sprelay /xml "%~dp0sprelay-task.xml" /ru "%TASKUSER%" /f
if errorlevel 1 goto failed
set "RC=0"
echo RESULT: OK - task "sprelay" registered (runs as %TASKUSER%). Check: schtasks /run /tn sprelay
goto end
:failed
set "RC=1"
echo RESULT: ERROR - the task was not registered (see above). Run this file as administrator.
:end
if not defined SPRELAY_NO_PAUSE pause
exit /b %RC%
