/**
 * A subscription's selection set compiled to a plain projection of its payload, for the common
 * documents: fields (aliases and `__typename` too) of object types whose fields have no resolver of
 * their own, leaves serialised by their type's own `serialize`. For such a document and a payload it
 * handles, the JSON is what graphql-js `execute` gives (test/graphql/fanout.test.ts compares them);
 * anything else (fragments, directives, lists, arguments, a null in a non-null field, a value its
 * type refuses) answers null, and the caller runs `execute`. It saves the executor's per-event
 * work (execution context, variable coercion, path bookkeeping) on the subscription hot path.
 */
import { getOperationAST, isEnumType, isNonNullType, isObjectType, isScalarType, Kind, type DocumentNode, type GraphQLField, type GraphQLObjectType, type GraphQLOutputType, type GraphQLSchema, type SelectionSetNode } from 'graphql';

const FAIL = Symbol('not handled');

interface FieldPlan {
  key: string;
  name: string;
  nonNull: boolean;
  typename?: string;
  serialize?: (v: unknown) => unknown;
  object?: ObjectPlan;
}
interface ObjectPlan {
  typename: string;
  fields: FieldPlan[];
}

/** The root field's resolver that hands the payload on as it is (runtime/graphql/subscriptions.ts). */
export type IsPassThrough = (field: GraphQLField<unknown, unknown>) => boolean;

function planObject(type: GraphQLObjectType, set: SelectionSetNode | undefined): ObjectPlan | null {
  if (!set) return null;
  const fields: FieldPlan[] = [];
  const keys = new Set<string>();
  for (const sel of set.selections) {
    if (sel.kind !== Kind.FIELD || sel.directives?.length || sel.arguments?.length) return null;
    const key = sel.alias?.value ?? sel.name.value;
    if (keys.has(key)) return null; // graphql-js merges them; not worth copying
    keys.add(key);
    const name = sel.name.value;
    if (name === '__typename') {
      fields.push({ key, name, nonNull: true, typename: type.name });
      continue;
    }
    const def = type.getFields()[name];
    if (!def || def.resolve) return null;
    const field = planField(key, name, def.type, sel.selectionSet);
    if (!field) return null;
    fields.push(field);
  }
  return { typename: type.name, fields };
}

function planField(key: string, name: string, type: GraphQLOutputType, set: SelectionSetNode | undefined): FieldPlan | null {
  const nonNull = isNonNullType(type);
  const t = nonNull ? type.ofType : type;
  if (isScalarType(t) || isEnumType(t)) return set ? null : { key, name, nonNull, serialize: (v) => t.serialize(v) };
  if (isObjectType(t)) {
    const object = planObject(t, set);
    return object && { key, name, nonNull, object };
  }
  return null; // lists, interfaces, unions
}

function project(plan: ObjectPlan, src: Record<string, unknown>): Record<string, unknown> | typeof FAIL {
  const out: Record<string, unknown> = {};
  for (const f of plan.fields) {
    if (f.typename) {
      out[f.key] = f.typename;
      continue;
    }
    const v = src[f.name];
    if (v === null || v === undefined) {
      if (f.nonNull) return FAIL;
      out[f.key] = null;
    } else if (typeof v === 'function') {
      return FAIL;
    } else if (f.serialize) {
      let s: unknown;
      try {
        s = f.serialize(v);
      } catch {
        return FAIL;
      }
      if (s === null || s === undefined) return FAIL;
      out[f.key] = s;
    } else {
      if (typeof v !== 'object') return FAIL;
      const inner = project(f.object!, v as Record<string, unknown>);
      if (inner === FAIL) return FAIL;
      out[f.key] = inner;
    }
  }
  return out;
}

/** The projection of a subscription document as JSON (`{"data":…}`), or null when the document or the payload needs `execute`. */
export function compileSubscription(schema: GraphQLSchema, document: DocumentNode, operationName: string | null, isPassThrough: IsPassThrough): ((payload: unknown) => string | null) | null {
  const op = getOperationAST(document, operationName);
  const root = schema.getSubscriptionType();
  if (!op || op.operation !== 'subscription' || !root || op.directives?.length) return null;
  if (document.definitions.some((d) => d.kind === Kind.FRAGMENT_DEFINITION)) return null;
  const [sel, ...more] = op.selectionSet.selections;
  if (!sel || more.length || sel.kind !== Kind.FIELD || sel.directives?.length) return null;
  const def = root.getFields()[sel.name.value];
  if (!def || !isPassThrough(def as GraphQLField<unknown, unknown>)) return null;
  const field = planField(sel.alias?.value ?? sel.name.value, sel.name.value, def.type, sel.selectionSet);
  if (!field?.object) return null;
  const plan = field.object;
  const key = JSON.stringify(field.key);
  return (payload) => {
    if (payload === null || typeof payload !== 'object') return null;
    const data = project(plan, payload as Record<string, unknown>);
    return data === FAIL ? null : `{"data":{${key}:${JSON.stringify(data)}}}`;
  };
}
