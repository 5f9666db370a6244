/**
 * What the GraphQL engine (runtime/graphql/engine.ts) and the WebSocket process
 * (runtime/graphql/socket-child.ts) share: the JSON scalar, error masking, the schema with the
 * Subscription resolvers only, and graphql-yoga with its limits (graphql-armor). Imports no backend
 * module, so the socket process loads none.
 */
import { GraphQLError, GraphQLScalarType, Kind, printSchema, type GraphQLSchema, type ValueNode } from 'graphql';
import { createYoga, createSchema, type YogaServerOptions } from 'graphql-yoga';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { isFluxError } from '../errors/index.ts';
import { MAX_JSON_DEPTH, tooDeep, valueDepth } from '../input-limits/index.ts';
import { typeDefs } from './schema.ts';
import type { Hub } from './hub.ts';
import { subscriptionResolvers } from './subscriptions.ts';
import { useListBound } from './list-bound.ts';

/**
 * A JSON argument within the REST bodies' nesting limit (400 too_deep, docs/security.md "Limits"):
 * deeper values reached JSON.stringify's recursion on the way to a script worker and crashed FLUX.
 */
function shallow(v: unknown): unknown {
  if (valueDepth(v, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) throw tooDeep('a JSON argument');
  return v;
}

/** Any JSON value, passed through as is (nested at most MAX_JSON_DEPTH levels). */
export const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  description: 'Any JSON value (thing models, tags, payloads, counters).',
  serialize: (v) => v,
  parseValue: shallow,
  parseLiteral: (node: ValueNode, variables?: Record<string, unknown> | null): unknown => shallow(literal(node, variables)),
});

/** A JSON literal of the query as a value (its size is bounded by graphql-armor's token limit). */
function literal(node: ValueNode, variables?: Record<string, unknown> | null): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return node.values.map((v) => literal(v, variables));
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value, variables)]));
    case Kind.VARIABLE:
      return variables?.[node.name.value];
    default:
      return undefined;
  }
}

/** FluxError → its message and code (status in extensions); anything else is masked. */
export function maskError(error: unknown, message: string): Error {
  const e = error as GraphQLError;
  let original = e instanceof GraphQLError ? e.originalError : error;
  // graphql-js wraps a scalar's error twice when it coerces a variable (the JSON scalar's too_deep)
  while (original instanceof GraphQLError && original.originalError) original = original.originalError;
  if (isFluxError(original)) return new GraphQLError(original.message, { nodes: e.nodes, path: e.path, extensions: { code: original.code, status: original.status } });
  // graphql-js's own refusals are the client's to read: a variable of the wrong type wraps the scalar's GraphQLError
  if (e instanceof GraphQLError && (!e.originalError || original instanceof GraphQLError)) return e;
  // zod (parseBody) and express errors arrive as FluxError; anything else is a bug: hidden from the client.
  return new GraphQLError(message, { nodes: e.nodes, path: e.path, extensions: { code: 'internal' } });
}

/** The schema's types with the Subscription resolvers only: what the socket process serves, and what tests compile against. */
export function subscriptionSchema(hub: Hub): GraphQLSchema {
  return createSchema({ typeDefs, resolvers: [{ JSON: JSONScalar }, subscriptionResolvers(hub, maskError)] as never });
}

/** The schema as SDL, for docs/schema.graphql (the served schema is these type definitions with resolvers). */
export function schemaText(): string {
  return printSchema(createSchema({ typeDefs, resolvers: { JSON: JSONScalar } })) + '\n';
}

/** graphql-yoga over `schema` with FLUX's error masking and limits; `extra` adds the HTTP side (GraphiQL, context). */
export function yogaOver<C extends Record<string, any>>(schema: GraphQLSchema, path: string, extra: Partial<YogaServerOptions<C, object>> = {}) {
  return createYoga<C>({
    schema,
    graphqlEndpoint: path,
    landingPage: false,
    logging: false,
    graphiql: false,
    maskedErrors: { maskError },
    ...extra,
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: 8 },
        costLimit: { maxCost: 5000 },
        maxAliases: { n: 15 },
        maxDirectives: { n: 20 },
        maxTokens: { n: 3000 },
        blockFieldSuggestion: { enabled: true },
      }),
      // the cost limit above does not count list sizes
      useListBound(),
    ],
  });
}
