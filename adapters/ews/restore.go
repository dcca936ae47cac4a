package ews

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

var _ pipeline.RestoreTarget = (*Source)(nil)

// EnsureFolder implements pipeline.RestoreTarget: the folder must exist in
// the target mailbox (found by path in its hierarchy); creating folders
// over EWS (CreateFolder) is not built yet.
func (s *Source) EnsureFolder(ctx context.Context, mailbox, path, kind string) (string, error) {
	folders, err := s.Folders(ctx, mailbox)
	if err != nil {
		return "", err
	}
	for _, f := range folders {
		if strings.EqualFold(f.Path, path) && f.Kind == kind {
			return f.ID, nil
		}
	}
	return "", &domain.Failure{Class: domain.ClassFatal, Code: "ErrorFolderNotFound",
		Message: fmt.Sprintf("no %s folder %q in %s: restoring over EWS needs the folder to exist (create it, or restore without --into-folder)", kind, path, mailbox)}
}

// Lookup implements pipeline.RestoreTarget. UploadItems data is opaque,
// so a restore over EWS relies on its log to avoid duplicates; an item
// whose upload began when the process died is uploaded again.
func (s *Source) Lookup(context.Context, string, string, pipeline.RestoreItem) (string, bool, error) {
	return "", false, nil
}

// Create implements pipeline.RestoreTarget with UploadItems CreateNew: the
// exported data comes back with every property it had.
func (s *Source) Create(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (pipeline.CreateResult, error) {
	if it.Format != domain.FormatEWSExport {
		return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassFatal, Code: "UnsupportedFormat",
			Message: fmt.Sprintf("EWS restores ExportItems data; this item is stored as %s (restore it over Graph)", it.Format)}
	}
	var parent strings.Builder
	xml.EscapeText(&parent, []byte(folderID))
	body := op("UploadItems", "") + `<m:Items><t:Item CreateAction="CreateNew"><t:ParentFolderId Id="` + parent.String() + `"/><t:Data>` +
		base64.StdEncoding.EncodeToString(it.Content) + `</t:Data></t:Item></m:Items></m:UploadItems>`
	inner, err := s.t.call(ctx, s.impersonation(mailbox), body)
	if err != nil {
		return pipeline.CreateResult{}, err
	}
	type uploadMessage struct {
		responseMessage
		ItemID itemID `xml:"ItemId"`
	}
	msgs, err := messagesOf[uploadMessage](inner)
	if err != nil {
		return pipeline.CreateResult{}, malformed("UploadItems", err)
	}
	if len(msgs) != 1 {
		return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassTransient, Code: "MissingResponse", Message: "UploadItems answered without a response message"}
	}
	if fl := messageFailure(msgs[0].responseMessage); fl != nil {
		return pipeline.CreateResult{}, fl
	}
	return pipeline.CreateResult{ID: msgs[0].ItemID.ID}, nil
}

// Delete implements pipeline.RestoreTarget; replacing over EWS is not built.
func (s *Source) Delete(context.Context, string, string, string, string) error {
	return &domain.Failure{Class: domain.ClassFatal, Code: "Unsupported", Message: "--collisions replace is not available over EWS yet"}
}
