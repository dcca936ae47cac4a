package graphsdk

import "golang.org/x/oauth2"

// oauthHTTPClient is the context key golang.org/x/oauth2 reads its HTTP
// client from.
var oauthHTTPClient = oauth2.HTTPClient
