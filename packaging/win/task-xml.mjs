// The Windows Task Scheduler definition of the portable bundle (sprelay-task.xml): "sprelay.cmd once"
// every 5 minutes, never a second instance while one runs, whether a user is logged on or not.
// Used by scripts/bundle-win.mjs (the zip's copy, for C:\sprelay) and by install-task.mjs on the
// station (the same task for the folder the zip was unpacked into). Plain JS, no dependencies.

/** Escapes text for an XML element. */
function xmlText(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The task XML for a bundle unpacked into `folder` (a Windows path without a trailing backslash). */
export function taskXml(folder) {
  const dir = xmlText(folder.replace(/[\\/]+$/, ''));
  return `<?xml version="1.0" encoding="UTF-16"?>
<!-- sprelay: Task Scheduler task. Import: schtasks /create /tn sprelay /xml sprelay-task.xml /ru COMPUTER\\user
     (schtasks asks for that user's password), or run install-task.cmd, which writes this file for its own folder. -->
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>sprelay: one cycle of every route (SERVIO PUMP packages to and from head office) every 5 minutes. Folder: ${dir}</Description>
  </RegistrationInfo>
  <Triggers>
    <TimeTrigger>
      <Repetition>
        <Interval>PT5M</Interval>
        <StopAtDurationEnd>false</StopAtDurationEnd>
      </Repetition>
      <StartBoundary>2026-01-01T00:00:00</StartBoundary>
      <Enabled>true</Enabled>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <LogonType>Password</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>PT1H</ExecutionTimeLimit>
    <Priority>7</Priority>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>${dir}\\sprelay.cmd</Command>
      <Arguments>once</Arguments>
      <WorkingDirectory>${dir}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
`;
}

/** The bytes Task Scheduler itself writes: UTF-16LE with a byte order mark, CRLF line ends. */
export function encodeTaskXml(text) {
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text.replace(/\r?\n/g, '\r\n'), 'utf16le')]);
}
