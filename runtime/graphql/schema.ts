/**
 * The GraphQL schema (SDL). Field names are snake_case like every REST answer and live-feed event,
 * so one vocabulary serves both APIs. docs/schema.graphql is this schema printed
 * (`npm run docs:api`); test/graphql/schema.test.ts fails when they differ.
 */
export const typeDefs = /* GraphQL */ `
  "Any JSON value (thing models, tags, payloads, counters)."
  scalar JSON

  enum DeviceStatus {
    online
    offline
  }
  enum Order {
    asc
    desc
  }
  enum Agg {
    avg
    min
    max
    sum
    count
    first
    last
  }
  enum AlarmState {
    active
    acknowledged
    cleared
  }
  enum AlarmLevel {
    info
    warning
    critical
  }

  type PageInfo {
    total: Int!
    limit: Int!
    offset: Int!
    has_more: Boolean!
  }

  type Product {
    id: ID!
    key: String!
    name: String!
    description: String
    protocol_plugin_id: String
    "the thing model: properties, events, commands, storage settings"
    metadata: JSON!
    transport: JSON!
    auto_register_children: Boolean!
    child_product_id: String
    created_at: String!
    updated_at: String!
    "the product's devices, oldest first (at most limit, 1–1000)"
    devices(limit: Int = 100): [Device!]!
  }

  type ProductPage {
    items: [Product!]!
    page: PageInfo!
  }

  type Sample {
    metric: String!
    "epoch ms"
    ts: Float!
    value: JSON
  }

  type Device {
    id: ID!
    product_id: ID!
    name: String!
    enabled: Boolean!
    status: DeviceStatus!
    last_online: String
    tags: JSON!
    is_gateway: Boolean!
    gateway_id: String
    transport: JSON
    created_at: String!
    updated_at: String!
    product: Product
    "the newest stored value of each metric"
    latest: [Sample!]!
    "the device's newest alarms (at most limit, 1–1000)"
    alarms(state: AlarmState, limit: Int = 20): [Alarm!]!
  }

  type DevicePage {
    items: [Device!]!
    page: PageInfo!
  }

  type AggRow {
    metric: String!
    "bucket start, epoch ms"
    ts: Float!
    avg: Float
    min: Float
    max: Float
    sum: Float
    count: Int
    first: JSON
    last: JSON
  }

  type Telemetry {
    device_id: ID!
    from: Float!
    to: Float!
    "set for aggregated answers"
    interval: Float
    "raw values, when no interval or agg is given"
    samples: [Sample!]!
    "aggregates per metric and bucket, when interval or agg is given"
    buckets: [AggRow!]!
    "true when limit cut the answer"
    truncated: Boolean!
  }

  type Event {
    device_id: ID!
    event_id: String!
    ts: Float!
    payload: JSON!
    "the uplink's id: Query.trace(msg_id)"
    msg_id: String
    "the payload does not match the event the thing model declares"
    flagged: Boolean!
    problem: String
  }

  type EventPage {
    items: [Event!]!
    has_more: Boolean!
  }

  type Rule {
    id: ID!
    name: String!
    enabled: Boolean!
    trigger_script: String!
    action_type: String!
    action_config: JSON!
    product_id: String
    device_id: String
    version: Int!
    quarantined: Boolean!
    "runs, triggers, errors, last error, run times, action failures"
    stats: JSON!
  }

  type Alarm {
    id: ID!
    rule_id: String
    device_id: String
    level: AlarmLevel!
    state: AlarmState!
    message: String!
    count: Int!
    first_at: String!
    last_at: String!
    acked_at: String
    cleared_at: String
  }

  type AlarmPage {
    items: [Alarm!]!
    page: PageInfo!
  }

  type PluginVersion {
    version: Int!
    sha256: String!
    size: Int!
    source: String!
    active: Boolean!
    created_at: String!
    meta: JSON!
  }

  type Plugin {
    id: ID!
    active_version: Int
    meta: JSON
    versions: [PluginVersion!]!
  }

  type TraceSpan {
    stage: String!
    at: Float
    took_ms: Float
    ok: Boolean
    detail: JSON
    error: String
  }

  type Trace {
    id: ID!
    device_id: String
    received_at: Float
    spans: [TraceSpan!]!
  }

  type CommandResult {
    status: String!
    id: String!
    device_id: ID!
    transport: String
    topic: String
    bytes: Int!
    encoding: String!
    reason: String
  }

  type RuleTest {
    result: JSON
    triggered: Boolean
    error: JSON
    logs: JSON!
    commands: JSON!
    alarms: JSON!
    micros: Float!
  }

  type Query {
    products(key: String, q: String, protocol_plugin_id: String, limit: Int = 100, offset: Int = 0): ProductPage!
    product(id: ID!): Product
    devices(product_id: String, status: DeviceStatus, enabled: Boolean, is_gateway: Boolean, gateway_id: String, q: String, limit: Int = 100, offset: Int = 0): DevicePage!
    device(id: ID!): Device
    "stored telemetry: raw, or aggregated per interval (from/to: ISO 8601 or epoch ms; interval: 60000, 10s, 1m, 1h, 1d)"
    telemetry(device_id: ID!, metrics: [String!], from: String, to: String, interval: String, agg: [Agg!], limit: Int = 10000, order: Order = asc, offset: Int = 0): Telemetry!
    events(device_id: ID!, event: String, from: String, to: String, order: Order = asc, limit: Int = 1000): EventPage!
    rules(product_id: String, device_id: String, enabled: Boolean): [Rule!]!
    rule(id: ID!): Rule
    alarms(state: AlarmState, level: AlarmLevel, rule_id: String, device_id: String, limit: Int = 50, offset: Int = 0): AlarmPage!
    plugins: [Plugin!]!
    plugin(id: ID!): Plugin
    "what happened to one message, stage by stage"
    trace(msg_id: ID!): Trace
  }

  input ProductInput {
    key: String
    name: String
    description: String
    protocol_plugin_id: String
    metadata: JSON
    transport: JSON
    auto_register_children: Boolean
    child_product_id: String
  }

  input DeviceInput {
    id: String
    product_id: String
    name: String
    secret: String
    enabled: Boolean
    tags: JSON
    is_gateway: Boolean
    gateway_id: String
    transport: JSON
  }

  input RuleInput {
    name: String
    enabled: Boolean
    trigger_script: String
    action_type: String
    action_config: JSON
    product_id: String
    device_id: String
    env: JSON
  }

  type CreatedDevice {
    device: Device!
    "shown only in this answer"
    secret: String!
  }

  type Mutation {
    createProduct(input: ProductInput!): Product!
    updateProduct(id: ID!, input: ProductInput!): Product!
    deleteProduct(id: ID!): Boolean!
    createDevice(input: DeviceInput!): CreatedDevice!
    updateDevice(id: ID!, input: DeviceInput!): Device!
    deleteDevice(id: ID!): Boolean!
    createRule(input: RuleInput!): Rule!
    updateRule(id: ID!, input: RuleInput!): Rule!
    deleteRule(id: ID!): Boolean!
    "send a command to a device (its product plugin encodes it)"
    sendCommand(device_id: ID!, command: String!, params: JSON): CommandResult!
    acknowledgeAlarm(id: ID!): Alarm!
    clearAlarm(id: ID!): Alarm!
    "run an unsaved script on a sample message, without side effects"
    testRuleScript(trigger_script: String!, msg: JSON!, env: JSON): RuleTest!
  }

  type TelemetryUpdate {
    device_id: ID!
    product_key: String
    ts: Float!
    values: JSON!
    msg_id: String
  }

  type StatusUpdate {
    device_id: ID!
    product_key: String
    ts: Float!
    status: DeviceStatus!
    reason: String
  }

  type EventUpdate {
    device_id: ID!
    product_key: String
    ts: Float!
    event_id: String!
    payload: JSON!
    flagged: Boolean!
    problem: String
    msg_id: String
  }

  type AlarmUpdate {
    "raised, repeated, acknowledged, cleared"
    event: String!
    ts: Float!
    alarm: Alarm!
  }

  type Subscription {
    "stored telemetry as it arrives, filtered by device, product key or metric (values keep only those metrics)"
    telemetry(device_id: ID, product_key: String, metrics: [String!]): TelemetryUpdate!
    status(device_id: ID, product_key: String): StatusUpdate!
    events(device_id: ID, product_key: String, event: String): EventUpdate!
    alarms(device_id: ID, level: AlarmLevel): AlarmUpdate!
  }
`;
