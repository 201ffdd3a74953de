/**
 * The operator's side of roles as resources (`mcp-access role create | ls |
 * get | rm`): role documents in the backend the proxy configuration names.
 * Running proxies apply a change within about a second (role-watch.ts).
 */
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { AccessError } from '../errors.js';
import { loadRoles, type Role } from '../rbac/roles.js';
import { openBackend } from '../backend/open.js';
import { checkRoleDocument, roleSource, roleStore, type RoleRecord } from '../backend/roles.js';
import type { Backend, RecordStore } from '../backend/types.js';
import { loadProxyConfig, type ProxyConfig } from './config.js';

export interface RoleAdmin {
  config: ProxyConfig;
  backend: Backend;
  store: RecordStore<RoleRecord>;
  /** The roles proxy.yaml defines (roles, roles_files). */
  configRoles: Role[];
}

export async function openRoleAdmin(configPath: string): Promise<RoleAdmin> {
  const config = await loadProxyConfig(configPath);
  const configRoles = loadRoles({
    inline: config.rolesInline,
    files: config.rolesFiles,
    baseDir: config.baseDir,
    configPath: config.path,
  }).roles;
  const backend = await openBackend(config.backend);
  return { config, backend, store: roleStore(backend), configRoles };
}

export interface CreatedRole {
  name: string;
  created: boolean;
  warnings: string[];
}

/**
 * Create or update every role document in the file (multi-document YAML).
 * All are checked before any is written: one bad document writes nothing.
 */
export async function createRoles(admin: RoleAdmin, file: string, now = new Date()): Promise<CreatedRole[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new AccessError(
      'CONFIG_MISSING',
      `${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      { hint: 'check the path given to -f' },
    );
  }
  const docs = parseAllDocuments(text);
  const checked: Array<{ role: Role; document: Record<string, unknown>; warnings: string[] }> = [];
  let i = 0;
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    i++;
    if (d.errors.length > 0)
      throw new AccessError('CONFIG_INVALID', `${file}: document ${i}: not valid YAML: ${d.errors[0]!.message}`, {
        hint: 'fix the role document (see docs/rbac.md)',
      });
    const doc: unknown = d.toJS();
    if (doc === null || doc === undefined) continue;
    const warnings: string[] = [];
    const where = `${file}${i > 1 ? ` (document ${i})` : ''}`;
    const role = checkRoleDocument(doc, where, (w) => warnings.push(w));
    const inConfig = admin.configRoles.find((r) => r.name === role.name);
    if (inConfig)
      throw new AccessError(
        'ROLE_CONFLICT',
        `role "${role.name}" is defined in ${admin.config.path} (${inConfig.source}); a backend role of that name would be ignored`,
      );
    if (checked.some((c) => c.role.name === role.name))
      throw new AccessError('CONFIG_INVALID', `${where}: role "${role.name}" is defined twice in ${file}`);
    checked.push({ role, document: doc as Record<string, unknown>, warnings });
  }
  if (checked.length === 0) throw new AccessError('USAGE', `${file} holds no role document`);
  const out: CreatedRole[] = [];
  for (const c of checked) {
    const existed = (await admin.store.read(c.role.name)) !== undefined;
    await admin.store.write(c.role.name, { name: c.role.name, document: c.document, updatedAt: now.toISOString() });
    out.push({ name: c.role.name, created: !existed, warnings: c.warnings });
  }
  return out;
}

export interface ListedRole {
  name: string;
  /** `backend` (a resource) or `config` (proxy.yaml). */
  source: 'backend' | 'config';
  /** Where it is defined: `roles[0]`, a file, or `backend`. */
  where: string;
  updatedAt?: string;
  /** A backend role proxy.yaml also defines: the configuration's wins. */
  shadowed?: boolean;
}

export async function listRoles(admin: RoleAdmin): Promise<ListedRole[]> {
  const configNames = new Set(admin.configRoles.map((r) => r.name));
  const out: ListedRole[] = admin.configRoles.map((r) => ({ name: r.name, source: 'config', where: r.source }));
  for (const rec of await admin.store.readAll()) {
    out.push({
      name: rec.name,
      source: 'backend',
      where: admin.backend.type === 'postgres' ? 'PostgreSQL' : admin.store.where,
      updatedAt: rec.updatedAt,
      ...(configNames.has(rec.name) ? { shadowed: true } : {}),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.source.localeCompare(b.source));
}

function unknownRole(admin: RoleAdmin, name: string): AccessError {
  const inConfig = admin.configRoles.find((r) => r.name === name);
  return new AccessError(
    'ROLE_UNKNOWN',
    inConfig
      ? `role "${name}" is defined in ${admin.config.path} (${inConfig.source}), not in the backend`
      : `no role named "${name}" in the backend`,
    inConfig ? { hint: 'change it in the proxy configuration' } : {},
  );
}

export async function getRole(admin: RoleAdmin, name: string): Promise<RoleRecord> {
  const rec = await admin.store.read(name);
  if (!rec) throw unknownRole(admin, name);
  return rec;
}

export async function removeRole(admin: RoleAdmin, name: string): Promise<void> {
  if (!(await admin.store.remove(name))) throw unknownRole(admin, name);
}

export { roleSource };
