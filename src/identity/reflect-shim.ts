/**
 * The smallest `Reflect` metadata API that `tsyringe` (a dependency of
 * @peculiar/x509) insists on at import time. @peculiar/x509 only registers
 * parameterless classes, so get/define/getOwn on a WeakMap is all it needs;
 * this saves pulling in the full `reflect-metadata` package. It never replaces
 * a real implementation that is already loaded.
 */
type MetadataMap = Map<unknown, unknown>;
const store = new WeakMap<object, MetadataMap>();

function mapFor(target: object, create: boolean): MetadataMap | undefined {
  let map = store.get(target);
  if (!map && create) {
    map = new Map();
    store.set(target, map);
  }
  return map;
}

const R = Reflect as unknown as Record<string, unknown>;
if (typeof R.getMetadata !== 'function') {
  R.defineMetadata = (key: unknown, value: unknown, target: object) => {
    mapFor(target, true)!.set(key, value);
  };
  R.getOwnMetadata = (key: unknown, target: object) => mapFor(target, false)?.get(key);
  R.getMetadata = (key: unknown, target: object) => {
    for (let o: object | null = target; o; o = Object.getPrototypeOf(o) as object | null) {
      const value = mapFor(o, false)?.get(key);
      if (value !== undefined) return value;
    }
    return undefined;
  };
}

export {};
