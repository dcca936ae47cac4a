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

// EnsureFolder implements pipeline.RestoreTarget: the folder found by path
// in the mailbox's hierarchy, its missing levels created with CreateFolder.
func (s *Source) EnsureFolder(ctx context.Context, mailbox, path, kind string) (string, error) {
	folders, err := s.Folders(ctx, mailbox)
	if err != nil {
		return "", err
	}
	byPath := map[string]string{}
	for _, f := range folders {
		byPath[strings.ToLower(f.Path)] = f.ID
	}
	levels := strings.Split(strings.Trim(path, "/"), "/")
	parent := s.distinguished(mailbox, treeRoot(mailbox))
	for i, name := range levels {
		if id, ok := byPath[strings.ToLower(strings.Join(levels[:i+1], "/"))]; ok {
			parent = folderRef{id: id}
			continue
		}
		id, err := s.createFolder(ctx, mailbox, parent, name, kind)
		if err != nil {
			return "", fmt.Errorf("create folder %s: %w", strings.Join(levels[:i+1], "/"), err)
		}
		parent = folderRef{id: id}
	}
	return parent.id, nil
}

func (s *Source) createFolder(ctx context.Context, mailbox string, parent folderRef, name, kind string) (string, error) {
	el := map[string]string{domain.KindCalendar: "CalendarFolder", domain.KindContacts: "ContactsFolder", domain.KindTasks: "TasksFolder"}[kind]
	if el == "" {
		el = "Folder"
	}
	class := ""
	if el == "Folder" && kind != domain.KindMail && domain.FolderClass(kind) != "" {
		// Notes and journal folders are Folders of their class.
		class = `<t:FolderClass>` + domain.FolderClass(kind) + `</t:FolderClass>`
	}
	var n strings.Builder
	xml.EscapeText(&n, []byte(name))
	body := op("CreateFolder", "") + `<m:ParentFolderId>` + parent.xml() + `</m:ParentFolderId><m:Folders><t:` + el + `>` + class + `<t:DisplayName>` +
		n.String() + `</t:DisplayName></t:` + el + `></m:Folders></m:CreateFolder>`
	inner, err := s.t.call(ctx, s.impersonation(mailbox), body)
	if err != nil {
		return "", err
	}
	type created struct {
		responseMessage
		Folders struct {
			List []struct {
				ID itemID `xml:"FolderId"`
			} `xml:",any"`
		} `xml:"Folders"`
	}
	msgs, err := messagesOf[created](inner)
	if err != nil {
		return "", malformed("CreateFolder", err)
	}
	if len(msgs) != 1 {
		return "", &domain.Failure{Class: domain.ClassTransient, Code: "MissingResponse", Message: "CreateFolder answered without a response message"}
	}
	if fl := messageFailure(msgs[0].responseMessage); fl != nil {
		return "", fl
	}
	if len(msgs[0].Folders.List) != 1 || msgs[0].Folders.List[0].ID.ID == "" {
		return "", malformed("CreateFolder", fmt.Errorf("no folder id in the reply"))
	}
	return msgs[0].Folders.List[0].ID.ID, nil
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

// Delete implements pipeline.RestoreTarget with DeleteItem (restore
// --collisions replace): a hard delete, since the restored copy replaces
// it. Meeting cancellations are never sent and a recurring task loses
// all its occurrences, as the item itself goes.
func (s *Source) Delete(ctx context.Context, mailbox, _ string, itemID, _ string) error {
	var id strings.Builder
	xml.EscapeText(&id, []byte(itemID))
	body := op("DeleteItem", ` DeleteType="HardDelete" SendMeetingCancellations="SendToNone" AffectedTaskOccurrences="AllOccurrences"`) +
		`<m:ItemIds><t:ItemId Id="` + id.String() + `"/></m:ItemIds></m:DeleteItem>`
	inner, err := s.t.call(ctx, s.impersonation(mailbox), body)
	if err != nil {
		return err
	}
	msgs, err := messagesOf[responseMessage](inner)
	if err != nil {
		return malformed("DeleteItem", err)
	}
	if len(msgs) != 1 {
		return &domain.Failure{Class: domain.ClassTransient, Code: "MissingResponse", Message: "DeleteItem answered without a response message"}
	}
	if fl := messageFailure(msgs[0]); fl != nil {
		return fl
	}
	return nil
}
