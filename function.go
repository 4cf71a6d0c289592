// Package tamperguard is the root of the module and the package the Cloud Functions Go
// buildpack builds (it builds only the package at the root of the uploaded source). It
// registers the function "VerifyObject" (package function registers it with the
// Functions Framework when imported) and configures the instance at cold start: a bad
// configuration stops the instance before it serves, with one CRITICAL log line.
//
// Deploy with --entry-point=VerifyObject (FUNCTION_TARGET). The CLI lives in
// cmd/tamperguard; the function's code in function/.
package tamperguard

import (
	// The framework's declarative registration; a direct dependency for the buildpack.
	_ "github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/tamperguard/tamperguard/function"
)

func init() {
	function.ColdStart()
	// Cloud Run's requests reach the Functions Framework through the front, which keeps
	// its CloudEvents receiver from wedging (see function.FrontFramework).
	function.FrontFramework()
}
