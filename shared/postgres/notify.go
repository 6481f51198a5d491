package postgres

import "github.com/nexus/usage/shared/notify"

// NotifyStore keeps the notification workflow (the schema's part 8): rules,
// armed periods and their thresholds, the outbox, webhook endpoints, their
// deliveries and attempts. The crossings themselves are raised by the
// record path's last statement (record_usage_counts, EventStore). Its
// methods are in notify_arming.go (notify.ArmStore), notify_manage.go
// (notify.ManageStore) and notify_delivery.go (notify.DeliveryStore).
type NotifyStore struct{ db *DB }

// NewNotifyStore returns a store over db.
func NewNotifyStore(db *DB) *NotifyStore { return &NotifyStore{db: db} }

var _ notify.Store = (*NotifyStore)(nil)
