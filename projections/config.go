package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/domain"
)

// Config is the current configuration: the fold of every change.
type Config struct {
	Jobs        map[string]json.RawMessage
	Connections map[string]json.RawMessage
	Storages    map[string]json.RawMessage
	// Alerts are the alert settings (domain.AlertSettings), nil when off.
	Alerts  json.RawMessage
	History []domain.ConfigChange
}

// Names lists the keys of a definition map in order.
func Names(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LoadConfig folds the configuration topic.
func LoadConfig(l Scanner) (*Config, error) {
	c := &Config{Jobs: map[string]json.RawMessage{}, Connections: map[string]json.RawMessage{}, Storages: map[string]json.RawMessage{}}
	err := l.Scan(eventlog.Topic(domain.TopicConfig), 0, func(rec eventlog.Record) error {
		var ch domain.ConfigChange
		if err := json.Unmarshal(rec.Payload, &ch); err != nil {
			return fmt.Errorf("configuration change %d is corrupt: %w", rec.Seq, err)
		}
		c.History = append(c.History, ch)
		switch ch.Type {
		case domain.JobCreated, domain.JobEdited:
			c.Jobs[ch.Name] = ch.Definition
		case domain.JobDeleted:
			delete(c.Jobs, ch.Name)
		case domain.ConnectionAdded, domain.ConnectionEdited:
			c.Connections[ch.Name] = ch.Definition
		case domain.ConnectionRemoved:
			delete(c.Connections, ch.Name)
		case domain.StorageAdded:
			c.Storages[ch.Name] = ch.Definition
		case domain.StorageRemoved:
			delete(c.Storages, ch.Name)
		case domain.AlertsSet:
			c.Alerts = ch.Definition
		case domain.AlertsRemoved:
			c.Alerts = nil
		}
		return nil
	})
	return c, err
}

// RecordChange appends one configuration change.
func RecordChange(ctx context.Context, l Appender, ch domain.ConfigChange) error {
	ch.Schema = domain.SchemaVersion
	b, err := json.Marshal(ch)
	if err != nil {
		return err
	}
	_, err = l.Append(ctx, []eventlog.Record{{Topic: domain.TopicConfig, UUID: ch.ID, Payload: b,
		Metadata: map[string]string{eventlog.MetaType: ch.Type}}})
	return err
}

// RecordOps appends events of the ops topic: what maintenance (prune,
// repair) and alerts did, outside any backup run.
func RecordOps(ctx context.Context, l Appender, evs ...domain.Event) error {
	recs := make([]eventlog.Record, len(evs))
	for i, ev := range evs {
		ev.Schema = domain.SchemaVersion
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		recs[i] = eventlog.Record{Topic: domain.TopicOps, UUID: ev.ID, Payload: b,
			Metadata: map[string]string{eventlog.MetaType: string(ev.Type), eventlog.MetaRun: ev.Run}}
	}
	_, err := l.Append(ctx, recs)
	return err
}
