/**
 * Roles as resources (`mcp-access role create -f role.yaml`): role documents
 * stored in the backend, next to the roles of proxy.yaml. A record keeps the
 * document as written (after YAML parsing) and when it was last changed.
 *
 * Merging with proxy.yaml: a name defined in both is taken from proxy.yaml
 * (the file an operator reviews and deploys) and the backend's copy is
 * ignored with a warning; `role create` refuses such a name when it knows the
 * configuration. See docs/rbac.md, "Roles as resources".
 */
import { AccessError } from '../errors.js';
import { parseRole, type Role, type RoleDocument } from '../rbac/roles.js';
import { KINDS, type Backend, type RecordStore } from './types.js';

export interface RoleRecord {
  name: string;
  /** The role document (kind: role, version, metadata, spec). */
  document: Record<string, unknown>;
  updatedAt: string;
}

function parseRoleRecord(value: unknown, where: string): RoleRecord {
  const v = value as Partial<RoleRecord> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.name !== 'string' ||
    typeof v.document !== 'object' ||
    v.document === null
  )
    throw new AccessError('BACKEND_UNAVAILABLE', `${where} is damaged: not a role record`, {
      hint: 'remove it (`mcp-access role rm`) and create it again',
    });
  return v as RoleRecord;
}

export function roleStore(backend: Backend): RecordStore<RoleRecord> {
  return backend.records(KINDS.role, parseRoleRecord);
}

/** Where a backend role is said to come from in messages. */
export function roleSource(name: string): string {
  return `backend role "${name}"`;
}

/** Parse and check one document as `role create` stores it; throws CONFIG_INVALID naming what is wrong. */
export function checkRoleDocument(doc: unknown, where: string, warn: (w: string) => void): Role {
  return parseRole(doc, where, warn);
}

/**
 * The backend's roles as Role objects, leaving out those whose names
 * proxy.yaml defines (`shadowed`) and those that no longer parse (`broken`,
 * with why; fail closed: a broken role grants nothing).
 */
export async function loadBackendRoles(
  store: RecordStore<RoleRecord>,
  configNames: ReadonlySet<string>,
): Promise<{ roles: Role[]; documents: RoleDocument[]; warnings: string[] }> {
  const roles: Role[] = [];
  const documents: RoleDocument[] = [];
  const warnings: string[] = [];
  for (const rec of await store.readAll()) {
    if (configNames.has(rec.name)) {
      warnings.push(
        `${roleSource(rec.name)} is ignored: the proxy configuration defines a role of that name, which wins (remove one of them)`,
      );
      continue;
    }
    try {
      const role = parseRole(rec.document, roleSource(rec.name), () => {});
      if (role.name !== rec.name) throw new AccessError('CONFIG_INVALID', `its metadata.name is "${role.name}"`);
      roles.push(role);
      documents.push({ where: roleSource(rec.name), doc: rec.document });
    } catch (err) {
      warnings.push(`${roleSource(rec.name)} is ignored (it grants nothing): ${(err as Error).message}`);
    }
  }
  return { roles, documents, warnings };
}
