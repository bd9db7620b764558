/** Starts `sleep` under the guard (argv: marker, mode) and waits to be killed; prints its child's pid. */
import { spawnGuarded } from '../../src/postgres/child-process.js';

const [marker, mode] = process.argv.slice(2);
const child = spawnGuarded('sh', ['-c', `sleep 600; echo ${marker}`], { group: mode === 'group', portable: mode !== 'setpriv' });
console.log(`started ${child.pid}`);
setInterval(() => undefined, 1000);
