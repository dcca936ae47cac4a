package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/mailvault/mailvault/adapters/dashboard"
	"github.com/mailvault/mailvault/internal/app"
)

var _ dashboard.QuarantineDesk = dashboardBackend{}

func (b dashboardBackend) JobQuarantine(ctx context.Context, job string) ([]dashboard.Quarantined, error) {
	recs, err := b.svc.JobQuarantine(ctx, job)
	out := make([]dashboard.Quarantined, len(recs))
	for i, q := range recs {
		key, _ := json.Marshal(app.QuarantinedItem{Mailbox: q.Mailbox, FolderID: q.FolderID, ItemID: q.ItemID})
		out[i] = dashboard.Quarantined{Key: base64.RawURLEncoding.EncodeToString(key), Mailbox: q.Mailbox, Folder: q.Folder, ItemID: q.ItemID,
			Code: q.Code, Position: q.Position, Attempts: q.Attempts, Inferred: q.Inferred, First: q.First, LastAttempt: q.LastAttempt}
	}
	return out, err
}

// RetryQuarantined records the retry (the application starts the job
// when it is stopped).
func (b dashboardBackend) RetryQuarantined(ctx context.Context, job string, keys []string) (string, error) {
	var items []app.QuarantinedItem
	for _, k := range keys {
		raw, err := base64.RawURLEncoding.DecodeString(k)
		var it app.QuarantinedItem
		if err == nil {
			err = json.Unmarshal(raw, &it)
		}
		if err != nil {
			return "", fmt.Errorf("the form names an item it cannot: reload the page")
		}
		items = append(items, it)
	}
	res, err := b.svc.RetryQuarantined(ctx, job, items)
	return res.Say(), err
}
