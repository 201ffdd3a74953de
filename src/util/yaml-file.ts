/** A configuration file's YAML: a missing or unreadable file, or YAML that does not parse, is one clear error. */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { AccessError } from '../errors.js';

export async function readYamlFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AccessError(
      'CONFIG_MISSING',
      code === 'ENOENT' ? `config file ${path} does not exist` : `config file ${path} cannot be read (${code})`,
    );
  }
  try {
    return parseYaml(text) as unknown;
  } catch (err) {
    throw new AccessError('CONFIG_INVALID', `${path}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}
