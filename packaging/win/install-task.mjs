// Run by install-task.cmd with the bundled node.exe: writes sprelay-task.xml for the folder the bundle
// was unpacked into, so that the task starts that folder's sprelay.cmd.
//   node install-task.mjs FOLDER OUT.xml
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { encodeTaskXml, taskXml } from './task-xml.mjs';

const [folderArg, out] = process.argv.slice(2);
if (!folderArg || !out) {
  process.stderr.write('usage: node install-task.mjs FOLDER OUT.xml\n');
  process.exit(1);
}
const folder = resolve(folderArg);
writeFileSync(out, encodeTaskXml(taskXml(folder)));
process.stdout.write(`wrote ${out} (task for ${folder}\\sprelay.cmd)\n`);
