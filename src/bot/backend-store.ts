/**
 * Bot records in the backend's records (PostgreSQL with `backend: { type:
 * postgres }`): the same records as the state directory's files, one row per
 * bot; `locked` is one transaction under an advisory lock, so the CLI and
 * every proxy replica change records one at a time.
 */
import { AccessError } from '../errors.js';
import { isValidName } from '../identity/names.js';
import { KINDS, type Backend, type RecordStore } from '../backend/types.js';
import { BotStore, checkRecord, type BotRecord, type BotRecords } from './store.js';

export class BackendBotStore implements BotRecords {
  readonly dir: string;

  constructor(private readonly records: RecordStore<BotRecord>) {
    this.dir = records.where;
  }

  async ensure(): Promise<void> {}

  locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.records.locked(fn);
  }

  private check(name: string): void {
    if (!isValidName('bot', name)) throw new AccessError('USAGE', `bot name ${JSON.stringify(name)} is not allowed`);
  }

  read(name: string): Promise<BotRecord | undefined> {
    this.check(name);
    return this.records.read(name);
  }

  readAll(): Promise<BotRecord[]> {
    return this.records.readAll();
  }

  write(record: BotRecord): Promise<void> {
    this.check(record.name);
    return this.records.write(record.name, record);
  }

  names(): Promise<string[]> {
    return this.records.names();
  }

  stamp(name: string): Promise<string | undefined> {
    return this.records.stamp(name);
  }
}

/** The bot records of a proxy: in the backend with type postgres, else in bot.state_dir. */
export function openBotStore(stateDir: string, backend?: Backend): BotRecords {
  if (backend?.type === 'postgres') return new BackendBotStore(backend.records(KINDS.bot, checkRecord));
  return new BotStore(stateDir);
}
