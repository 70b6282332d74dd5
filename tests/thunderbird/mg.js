// What tests/thunderbird/driver.py asks Thunderbird to do, as a user would through its
// window: accounts, folder discovery, reading, flagging, moving and sending. Defined on
// globalThis.mg in Marionette's chrome context; each action resolves when Thunderbird's own
// listener says it is done.
const { MailServices } = ChromeUtils.importESModule("resource:///modules/MailServices.sys.mjs");
const mg = globalThis.mg = {};
mg.account = key => MailServices.accounts.getAccount(key);
// The server's names: some Thunderbird versions show the inbox as "Inbox" (RFC 3501 §5.1:
// INBOX in any case is the inbox).
mg.nameOf = f => (f.flags & Ci.nsMsgFolderFlags.Inbox) ? "INBOX" : f.name;
mg.pathOf = f => { let p = []; while (f && f.parent) { p.unshift(mg.nameOf(f)); f = f.parent; } return p.join("/"); };
mg.folder = (key, path) => mg.account(key).incomingServer.rootFolder.descendants.find(f => mg.pathOf(f) == path);
mg.urlListener = resolve => ({ OnStartRunningUrl() {}, OnStopRunningUrl(url, status) { resolve(status); } });
mg.addAccount = (user, port, pw, smtpPort) => {
  let server = MailServices.accounts.createIncomingServer(user, "127.0.0.1", "imap");
  server.port = port;
  server.socketType = Ci.nsMsgSocketType.plain;
  server.authMethod = Ci.nsMsgAuthMethod.passwordCleartext;
  server.password = pw;
  let identity = MailServices.accounts.createIdentity();
  identity.email = user.split("*")[0];
  let smtp = MailServices.outgoingServer.createServer("smtp");
  smtp.QueryInterface(Ci.nsISmtpServer);
  smtp.hostname = "127.0.0.1"; smtp.port = smtpPort; smtp.username = user; smtp.password = pw;
  smtp.socketType = Ci.nsMsgSocketType.plain; smtp.authMethod = Ci.nsMsgAuthMethod.passwordCleartext;
  identity.smtpServerKey = smtp.key;
  let account = MailServices.accounts.createAccount();
  account.incomingServer = server;
  account.addIdentity(identity);
  return account.key;
};
mg.discover = key => new Promise(resolve => {
  let server = mg.account(key).incomingServer.QueryInterface(Ci.nsIImapIncomingServer);
  MailServices.imap.discoverAllFolders(server.rootFolder, mg.urlListener(() =>
    resolve(server.rootFolder.descendants.map(mg.pathOf))), null);
});
mg.update = (key, path) => new Promise((resolve, reject) => {
  let folder = mg.folder(key, path);
  if (!folder) return reject(new Error("no folder " + path));
  folder.QueryInterface(Ci.nsIMsgImapMailFolder).updateFolderWithListener(null, mg.urlListener(status =>
    resolve([...folder.messages].map(h => h.mime2DecodedSubject).sort())));
});
mg.header = (key, path, subject) => [...mg.folder(key, path).messages].find(h => h.mime2DecodedSubject == subject);
mg.flag = (key, path, subject) => new Promise(resolve => {
  let h = mg.header(key, path, subject);
  h.folder.markMessagesFlagged([h], true);
  // The STORE goes out when the folder next talks to the server.
  h.folder.QueryInterface(Ci.nsIMsgImapMailFolder).updateFolderWithListener(null, mg.urlListener(resolve));
});
mg.move = (key, path, subject, to) => new Promise(resolve => {
  let h = mg.header(key, path, subject);
  MailServices.copy.copyMessages(h.folder, [h], mg.folder(key, to), true, {
    QueryInterface: ChromeUtils.generateQI(["nsIMsgCopyServiceListener"]),
    onStartCopy() {}, onProgress() {}, setMessageKey() {}, getMessageId() {},
    onStopCopy(status) { resolve(status); },
  }, null, false);
});
mg.send = (key, to, subject) => new Promise((resolve, reject) => {
  let account = mg.account(key);
  let fields = Cc["@mozilla.org/messengercompose/composefields;1"].createInstance(Ci.nsIMsgCompFields);
  fields.from = account.defaultIdentity.email; fields.to = to; fields.subject = subject;
  fields.body = "sent from Thunderbird\r\n";
  let params = Cc["@mozilla.org/messengercompose/composeparams;1"].createInstance(Ci.nsIMsgComposeParams);
  params.composeFields = fields; params.identity = account.defaultIdentity;
  params.format = Ci.nsIMsgCompFormat.PlainText;
  let compose = MailServices.compose.initCompose(params, null, null);
  compose.addMsgSendListener({
    QueryInterface: ChromeUtils.generateQI(["nsIMsgSendListener"]),
    onStartSending() {}, onSendProgress() {}, onStatus() {}, onGetDraftFolderURI() {},
    onSendNotPerformed(id, status) { reject(new Error("not sent " + status)); },
    onStopSending(id, status) { if (status != 0) reject(new Error("send failed " + status)); else resolve("sent"); },
    onTransportSecurityError() {},
  });
  let progress = Cc["@mozilla.org/messenger/progress;1"].createInstance(Ci.nsIMsgProgress);
  progress.registerListener({ QueryInterface: ChromeUtils.generateQI(["nsIWebProgressListener", "nsISupportsWeakReference"]),
    onStateChange(p, r, flags, status) {
      if (flags & Ci.nsIWebProgressListener.STATE_STOP) resolve(status); },
    onProgressChange() {}, onLocationChange() {}, onStatusChange() {}, onSecurityChange() {}, onContentBlockingEvent() {} });
  compose.sendMsg(Ci.nsIMsgCompDeliverMode.Now, account.defaultIdentity, key, null, progress);
});
