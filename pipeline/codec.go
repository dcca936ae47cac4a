package pipeline

import (
	"encoding/json"
	"fmt"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/mailvault/mailvault/domain"
)

// Metadata keys set on every message. Log transports index by them (the
// Badger log indexes run, mailbox and folder_id).
const (
	metaRun      = "run"
	metaMailbox  = "mailbox"
	metaFolderID = "folder_id"
	metaType     = "type"
)

func encode(ev domain.Event) (*message.Message, error) {
	ev.Schema = domain.SchemaVersion
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", ev.Type, err)
	}
	m := message.NewMessage(ev.ID, b)
	m.Metadata.Set(metaRun, ev.Run)
	m.Metadata.Set(metaType, string(ev.Type))
	if ev.Mailbox != "" {
		m.Metadata.Set(metaMailbox, ev.Mailbox)
	}
	if ev.FolderID != "" {
		m.Metadata.Set(metaFolderID, ev.FolderID)
	}
	return m, nil
}

func encodeAll(evs []domain.Event) ([]*message.Message, error) {
	out := make([]*message.Message, 0, len(evs))
	for _, ev := range evs {
		m, err := encode(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func decode(m *message.Message) (domain.Event, error) {
	var ev domain.Event
	// encoding/json's semantics on json/v2's faster decoder, as
	// projections.Decode: every stage decodes every message it gets.
	if err := jsonv1.Unmarshal(m.Payload, &ev); err != nil {
		return ev, fmt.Errorf("decode message %s: %w", m.UUID, err)
	}
	return ev, nil
}
