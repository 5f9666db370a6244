/**
 * How many list items an operation can answer, estimated before it runs: each field with a `limit`
 * argument multiplies what it selects by that limit (its default when absent). graphql-armor's cost
 * limit counts fields, not list sizes, so `devices(limit: 1000) { items { product { devices(limit:
 * 1000) { id } } } }` (a million devices, the same thousand re-listed through Device.product) cost
 * as little as one device; two such aliases held FLUX's thread for 36 s and 750 MB.
 */
import { getArgumentValues, getNamedType, getOperationAST, getVariableValues, GraphQLError, isInterfaceType, isObjectType, Kind } from 'graphql';
import type { DocumentNode, FragmentDefinitionNode, GraphQLNamedType, GraphQLSchema, SelectionSetNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** The most list items one operation may ask for (ten of the largest REST pages). */
export const MAX_LIST_ITEMS = 100_000;

/** The items an operation's `limit` arguments allow it, multiplied down its selection. */
export function listItems(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, rawVariables: Record<string, unknown> | null | undefined): number {
  const op = getOperationAST(document, operationName);
  if (!op) return 0;
  const coerced = getVariableValues(schema, op.variableDefinitions ?? [], rawVariables ?? {}, { maxErrors: 1 });
  const variables = coerced.coerced ?? {};
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
  // per fragment, for one parent: the count is linear in the parents, so each is walked once
  const memo = new Map<string, number>();
  const root = op.operation === 'query' ? schema.getQueryType() : op.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();

  const perParent = (set: SelectionSetNode, type: GraphQLNamedType | null | undefined): number => {
    let total = 0;
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        if (!isObjectType(type) && !isInterfaceType(type)) continue;
        const def = type.getFields()[sel.name.value];
        if (!def) continue;
        let n = 1;
        if (def.args.some((a) => a.name === 'limit')) {
          let limit: unknown;
          try {
            limit = getArgumentValues(def, sel, variables).limit;
          } catch {
            limit = undefined; // a bad value fails the execution itself
          }
          n = typeof limit === 'number' && Number.isFinite(limit) && limit > 0 ? limit : 1;
          total += n;
        }
        if (sel.selectionSet) total += n * perParent(sel.selectionSet, getNamedType(def.type));
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        total += perParent(sel.selectionSet, sel.typeCondition ? schema.getType(sel.typeCondition.name.value) : type);
      } else {
        const name = sel.name.value;
        let c = memo.get(name);
        if (c === undefined) {
          const f = fragments.get(name);
          memo.set(name, 0); // fragment cycles are refused by validation; this only ends one
          c = f ? perParent(f.selectionSet, schema.getType(f.typeCondition.name.value)) : 0;
          memo.set(name, c);
        }
        total += c;
      }
    }
    return total;
  };
  return perParent(op.selectionSet, root);
}

/** Refuses (bad_request, before anything runs) an operation that could answer more than `max` list items. */
export function useListBound(max = MAX_LIST_ITEMS): Plugin {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const n = listItems(args.schema, args.document, args.operationName, args.variableValues as Record<string, unknown> | undefined);
      if (n <= max) return;
      const message = `this operation could answer ${n} list items (its limit arguments multiplied down the selection); at most ${max}: ask for fewer or page`;
      setResultAndStopExecution({ errors: [new GraphQLError(message, { extensions: { code: 'bad_request', status: 400 } })] });
    },
  };
}
