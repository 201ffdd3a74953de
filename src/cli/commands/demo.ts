import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const demoCommand: CommandModule = {
  command: 'demo',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`demo` is not implemented yet');
  },
};
