package ews

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/mailvault/mailvault/adapters/itemformat"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
)

var _ pipeline.RestoreTarget = (*Source)(nil)

// EnsureFolder implements pipeline.RestoreTarget: the folder found by path
// in the mailbox's hierarchy, its missing levels created with CreateFolder.
func (s *Source) EnsureFolder(ctx context.Context, mailbox, path, kind string) (string, bool, error) {
	folders, err := s.Folders(ctx, mailbox)
	if err != nil {
		return "", false, err
	}
	byPath := map[string]string{}
	for _, f := range folders {
		byPath[strings.ToLower(f.Path)] = f.ID
	}
	levels := strings.Split(strings.Trim(path, "/"), "/")
	parent, created := s.distinguished(mailbox, treeRoot(mailbox)), false
	for i, name := range levels {
		if id, ok := byPath[strings.ToLower(strings.Join(levels[:i+1], "/"))]; ok {
			parent = folderRef{id: id}
			continue
		}
		id, err := s.createFolder(ctx, mailbox, parent, name, kind)
		if err != nil {
			return "", false, fmt.Errorf("create folder %s: %w", strings.Join(levels[:i+1], "/"), err)
		}
		parent, created = folderRef{id: id}, true
	}
	return parent.id, created, nil
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

// Lookup implements pipeline.RestoreTarget with FindItem restricted to
// the restore mark (an extended property the uploaded stream carries),
// then, for a message, to its Message-ID.
func (s *Source) Lookup(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (string, bool, error) {
	markURI := `<t:ExtendedFieldURI PropertySetId="` + itemformat.RestoreMarkSet + `" PropertyName="` + itemformat.RestoreMarkName + `" PropertyType="String"/>`
	restrictions := []string{isEqualTo(markURI, it.VersionID)}
	if it.Kind == domain.KindMail {
		if id := itemformat.MessageID(it.Format, it.Content); id != "" {
			restrictions = append(restrictions, isEqualTo(`<t:FieldURI FieldURI="message:InternetMessageId"/>`, id))
		}
	}
	for _, r := range restrictions {
		inner, err := s.t.call(ctx, s.impersonation(mailbox), findItemRequest(folderID, r))
		if err != nil {
			return "", false, err
		}
		msgs, err := messagesOf[findItemMessage](inner)
		if err != nil || len(msgs) != 1 {
			return "", false, malformed("FindItem", err)
		}
		if fl := messageFailure(msgs[0].responseMessage); fl != nil {
			return "", false, fl
		}
		for _, item := range msgs[0].Root.Items.List {
			if item.ItemID.ID != "" {
				return item.ItemID.ID, true, nil
			}
		}
	}
	return "", false, nil
}

// isEqualTo is a FindItem restriction: the property at uri equals value.
func isEqualTo(uri, value string) string {
	return `<t:IsEqualTo>` + uri + `<t:FieldURIOrConstant><t:Constant Value="` + esc(value) + `"/></t:FieldURIOrConstant></t:IsEqualTo>`
}

// findItemRequest asks for the id of the first item of a folder that
// meets restriction.
func findItemRequest(folderID, restriction string) string {
	return op("FindItem", ` Traversal="Shallow"`) + `<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>` +
		`<m:IndexedPageItemView MaxEntriesReturned="1" Offset="0" BasePoint="Beginning"/>` +
		`<m:Restriction>` + restriction + `</m:Restriction>` +
		`<m:ParentFolderIds><t:FolderId Id="` + esc(folderID) + `"/></m:ParentFolderIds></m:FindItem>`
}

type findItemMessage struct {
	responseMessage
	Root struct {
		Items struct {
			List []struct {
				ItemID itemID `xml:"ItemId"`
			} `xml:",any"`
		} `xml:"Items"`
	} `xml:"RootFolder"`
}

// Create implements pipeline.RestoreTarget with UploadItems CreateNew: the
// exported data comes back with every property it had.
func (s *Source) Create(ctx context.Context, mailbox, folderID string, it pipeline.RestoreItem) (pipeline.CreateResult, error) {
	if it.Format != domain.FormatEWSExport {
		return pipeline.CreateResult{}, &domain.Failure{Class: domain.ClassFatal, Code: "UnsupportedFormat",
			Message: fmt.Sprintf("EWS restores ExportItems data; this item is stored as %s (restore it over Graph)", it.Format)}
	}
	// The uploaded data carries the restore mark, which Lookup finds; data
	// mailvault cannot decode (a layout it does not know) goes up as it
	// is, and a repeated restore will not find that item.
	data, err := itemformat.MarkStream(it.Content, it.VersionID)
	if err != nil {
		s.cfg.Log.Warn().Str("mailbox", mailbox).Str("item", it.ItemID).Err(err).
			Msg("the exported data could not carry the restore mark: a repeated restore will not find this item")
		data = it.Content
	}
	var parent strings.Builder
	xml.EscapeText(&parent, []byte(folderID))
	body := op("UploadItems", "") + `<m:Items><t:Item CreateAction="CreateNew"><t:ParentFolderId Id="` + parent.String() + `"/><t:Data>` +
		base64.StdEncoding.EncodeToString(data) + `</t:Data></t:Item></m:Items></m:UploadItems>`
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
