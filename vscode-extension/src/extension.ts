// Entry point: the real language client (vscode-languageclient) and the Python extension's
// API, handed to the Controller, which holds the behaviour.

import * as vscode from "vscode";
import { PythonExtension } from "@vscode/python-extension";
import {
  CloseAction, ErrorAction, LanguageClient, LanguageClientOptions, ServerOptions, TransportKind,
} from "vscode-languageclient/node";

import { ClientLike, ClientSpec, Controller } from "./controller";
import { PythonApiLike } from "./python";

let controller: Controller | undefined;

function createClient(spec: ClientSpec): ClientLike {
  const serverOptions: ServerOptions = {
    command: spec.server.command,
    args: spec.server.args,
    options: spec.server.options,
    transport: TransportKind.stdio,
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: spec.documentSelector,
    initializationOptions: spec.initializationOptions,
    synchronize: { fileEvents: spec.fileWatchers },
    outputChannel: spec.outputChannel,
    traceOutputChannel: spec.outputChannel,
    // the crash-loop bound is the controller's (crashes.ts), not the client's default handler's
    errorHandler: {
      error: () => ({ action: ErrorAction.Continue }),
      closed: () => (spec.onClosed() === "restart"
        ? { action: CloseAction.Restart, handled: true }
        : { action: CloseAction.DoNotRestart, handled: true }),
    },
  };
  return new LanguageClient("convlint", "convlint", serverOptions, clientOptions) as unknown as ClientLike;
}

async function pythonApi(): Promise<PythonApiLike | undefined> {
  if (!vscode.extensions.getExtension("ms-python.python")) {
    return undefined;
  }
  return (await PythonExtension.api()) as unknown as PythonApiLike;
}

export async function activate(context: vscode.ExtensionContext): Promise<Controller> {
  controller = new Controller(context, { createClient, pythonApi });
  context.subscriptions.push(controller);
  // a new interpreter selected in the Python extension: start the server with it
  void pythonApi().then((api) => {
    const ev = (api as unknown as { environments?: { onDidChangeActiveEnvironmentPath?: vscode.Event<unknown> } })
      ?.environments?.onDidChangeActiveEnvironmentPath;
    if (ev) {
      context.subscriptions.push(ev(() => {
        if (!controller?.settings.interpreter) {
          void controller?.restart();
        }
      }));
    }
  }, () => undefined);
  await controller.activate();
  return controller;
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}
