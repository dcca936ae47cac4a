// Package graphsdk proves the Graph simulator's fidelity with Microsoft's
// own Go SDK: if msgraph-sdk-go can list users and folders, run a message
// delta round to its deltaLink, download MIME and send a $batch against it,
// so can every Graph client. It is a module of its own so that the SDK stays
// a test-only dependency.
package graphsdk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	azauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailvault/mailvault/adapters/graphsim"
	"github.com/mailvault/mailvault/adapters/simtenant"
)

const tenantYAML = `seed: 21
mailboxes:
  - address: ivy@contoso.test
    folders:
      - path: Inbox
        items: 25
        size: {min: 2KB, max: 4KB}
      - path: Inbox/Travel
        items: 3
  - address: jon@contoso.test
    folders:
      - path: Inbox
        items: 4
`

// credential gets client-credentials tokens from the simulator's Entra-like
// endpoint; the SDK asks it for tokens as it would ask azidentity.
type credential struct {
	cc clientcredentials.Config
	hc *http.Client
}

func (c credential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.cc.Token(context.WithValue(ctx, oauthHTTPClient, c.hc))
	if err != nil {
		return azcore.AccessToken{}, err
	}
	return azcore.AccessToken{Token: tok.AccessToken, ExpiresOn: tok.Expiry}, nil
}

func TestSDKAgainstSimulator(t *testing.T) {
	tenant, err := simtenant.Parse([]byte(tenantYAML))
	if err != nil {
		t.Fatal(err)
	}
	sim, err := graphsim.Start(tenant, graphsim.StartOptions{TLS: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ep := sim.Endpoint
	pem, err := os.ReadFile(ep.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	host := strings.TrimPrefix(strings.TrimSuffix(ep.GraphURL, "/v1.0"), "https://")
	cred := credential{cc: clientcredentials.Config{ClientID: ep.ClientID, ClientSecret: ep.ClientSecret, TokenURL: ep.TokenURL,
		Scopes: []string{"https://graph.microsoft.com/.default"}}, hc: hc}
	auth, err := azauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{"https://graph.microsoft.com/.default"}, []string{strings.Split(host, ":")[0], host})
	if err != nil {
		t.Fatal(err)
	}
	sdkClient := &http.Client{Transport: khttp.NewCustomTransportWithParentTransport(tr, msgraphcore.GetDefaultMiddlewaresWithOptions(&msgraphcore.GraphClientOptions{})...), Timeout: 30 * time.Second}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, sdkClient)
	if err != nil {
		t.Fatal(err)
	}
	adapter.SetBaseUrl(ep.GraphURL)
	client := msgraphsdk.NewGraphServiceClient(adapter)
	ctx := context.Background()

	// Users, one per page, through the SDK's page iterator (nextLinks).
	top := int32(1)
	page, err := client.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Top: &top, Select: []string{"id", "mail", "userPrincipalName"}}})
	if err != nil {
		t.Fatalf("list users: %v", describe(err))
	}
	it, err := msgraphcore.NewPageIterator[models.Userable](page, adapter, models.CreateUserCollectionResponseFromDiscriminatorValue)
	if err != nil {
		t.Fatal(err)
	}
	var mails []string
	if err := it.Iterate(ctx, func(u models.Userable) bool { mails = append(mails, *u.GetMail()); return true }); err != nil {
		t.Fatalf("page through users: %v", describe(err))
	}
	if strings.Join(mails, ",") != "ivy@contoso.test,jon@contoso.test" {
		t.Fatalf("users %v", mails)
	}

	// Folders and child folders, hidden ones included.
	user := client.Users().ByUserId("ivy@contoso.test")
	hidden := "true"
	folders, err := user.MailFolders().Get(ctx, &users.ItemMailFoldersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.ItemMailFoldersRequestBuilderGetQueryParameters{IncludeHiddenFolders: &hidden}})
	if err != nil {
		t.Fatalf("list mail folders: %v", describe(err))
	}
	var inbox models.MailFolderable
	for _, f := range folders.GetValue() {
		if *f.GetDisplayName() == "Inbox" {
			inbox = f
		}
	}
	if inbox == nil || *inbox.GetChildFolderCount() != 1 || *inbox.GetTotalItemCount() != 25 {
		t.Fatalf("no Inbox with one child folder and 25 items: %v", folders.GetValue())
	}
	children, err := user.MailFolders().ByMailFolderId(*inbox.GetId()).ChildFolders().Get(ctx, nil)
	if err != nil || len(children.GetValue()) != 1 || *children.GetValue()[0].GetDisplayName() != "Travel" {
		t.Fatalf("child folders: %v %v", describe(err), children)
	}
	wk, err := user.MailFolders().ByMailFolderId("inbox").Get(ctx, nil)
	if err != nil || *wk.GetId() != *inbox.GetId() {
		t.Fatalf("well-known name inbox: %v", describe(err))
	}

	// A message delta round, 10 per page, followed to its deltaLink.
	headers := abstractions.NewRequestHeaders()
	headers.Add("Prefer", "odata.maxpagesize=10")
	headers.Add("Prefer", `IdType="ImmutableId"`)
	delta := user.MailFolders().ByMailFolderId(*inbox.GetId()).Messages().Delta()
	resp, err := delta.GetAsDeltaGetResponse(ctx, &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: headers,
		QueryParameters: &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetQueryParameters{Select: []string{"id", "changeKey"}}})
	if err != nil {
		t.Fatalf("delta: %v", describe(err))
	}
	var ids []string
	var deltaLink string
	for pages := 1; ; pages++ {
		for _, m := range resp.GetValue() {
			ids = append(ids, *m.GetId())
			if m.GetChangeKey() == nil {
				t.Fatal("delta entry without changeKey")
			}
		}
		if l := resp.GetOdataDeltaLink(); l != nil {
			deltaLink = *l
			if pages != 3 {
				t.Fatalf("25 messages in %d pages of 10", pages)
			}
			break
		}
		next := resp.GetOdataNextLink()
		if next == nil {
			t.Fatal("a delta page with neither nextLink nor deltaLink")
		}
		if resp, err = delta.WithUrl(*next).GetAsDeltaGetResponse(ctx, &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: headers}); err != nil {
			t.Fatalf("delta next page: %v", describe(err))
		}
	}
	if len(ids) != 25 || !strings.HasPrefix(ids[0], "AAkALg") {
		t.Fatalf("delta ids %d, first %q (want immutable ids)", len(ids), ids[0])
	}
	// The deltaLink with no change since: an empty round.
	resp, err = delta.WithUrl(deltaLink).GetAsDeltaGetResponse(ctx, nil)
	if err != nil || len(resp.GetValue()) != 0 || resp.GetOdataDeltaLink() == nil {
		t.Fatalf("delta round from the deltaLink: %v", describe(err))
	}
	if u, _ := url.Parse(deltaLink); u.Host != host {
		t.Fatalf("deltaLink on another host: %s", deltaLink)
	}

	// MIME of one message.
	mime, err := user.Messages().ByMessageId(ids[0]).Content().Get(ctx, nil)
	if err != nil || !strings.Contains(string(mime), "Subject: ") || !strings.Contains(string(mime), "MIME-Version: 1.0") {
		t.Fatalf("$value: %v, %d bytes", describe(err), len(mime))
	}

	// A $batch of three message reads and one missing item.
	batch := msgraphcore.NewBatchRequest(adapter)
	var stepIDs []string
	for _, id := range []string{ids[1], ids[2], ids[3], "AAkALg00000000000000000000000999"} {
		info, err := user.Messages().ByMessageId(id).ToGetRequestInformation(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		step, err := batch.AddBatchRequestStep(*info)
		if err != nil {
			t.Fatal(err)
		}
		stepIDs = append(stepIDs, *step.GetId())
	}
	bresp, err := batch.Send(ctx, adapter)
	if err != nil {
		t.Fatalf("$batch: %v %T %+v", describe(err), err, err)
	}
	codes := bresp.GetStatusCodes()
	for i, id := range stepIDs {
		want := int32(200)
		if i == 3 {
			want = 404
		}
		if codes[id] != want {
			t.Fatalf("batch step %d status %d, want %d (all: %v)", i, codes[id], want, codes)
		}
	}
	msg, err := msgraphcore.GetBatchResponseById[models.Messageable](bresp, stepIDs[0], models.CreateMessageFromDiscriminatorValue)
	// Asked without Prefer: IdType, the body carries the default id form
	// of the same item.
	if err != nil || msg.GetId() == nil || (*msg.GetId())[6:] != ids[1][6:] || !strings.HasPrefix(*msg.GetId(), "AAMkAI") {
		t.Fatalf("batch step body: %v, want the message %s", describe(err), ids[1])
	}
}

// describe unwraps the SDK's OData errors into their code and message.
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	var oe *odataerrors.ODataError
	if errors.As(err, &oe) && oe.GetErrorEscaped() != nil {
		e := oe.GetErrorEscaped()
		code, msg := "", ""
		if e.GetCode() != nil {
			code = *e.GetCode()
		}
		if e.GetMessage() != nil {
			msg = *e.GetMessage()
		}
		return code + ": " + msg
	}
	return err.Error()
}
