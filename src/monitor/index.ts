/**
 * `baton-fleet/monitor`: the monitor (`startMonitor`, also `cluster.monitor()` and `baton serve`), its events,
 * alert rules and webhook options. Loaded apart from the core: it brings prom-client and node:http.
 */
export { startMonitor, type Monitor, type MonitorOptions } from './monitor.js';
export type { Alert, AlertRule, MonitorEvent, MonitorEventType, MonitorStatus, StampedEvent } from './monitor-events.js';
export type { AlertRuleOptions } from './alert-rules.js';
export type { WebhookOptions, AlertDelivery } from './webhook.js';
export { readStatus, type StatusSnapshot, type NodeStatus, type TaskStatus, type LockStatus } from './status.js';
export type { RelayStatusProvider, RelayStatus, RelayNodeStatus, RelayView } from './relay-watch.js';
