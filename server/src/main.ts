// Language server entry for the VS Code client: connection and wiring only. The transport
// (--stdio or --node-ipc) comes from the command line, as vscode-languageclient passes it.
import { runServe } from './commands/serve';

void runServe(process.argv.slice(2));
