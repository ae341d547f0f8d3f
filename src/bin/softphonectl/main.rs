//! `softphonectl`: the command-line client of softphoned's control socket.

mod callback;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};
use serde_json::{json, Value};
use softphoned::control::api::method;
use softphoned::control::client::Client;

#[derive(Parser)]
#[command(name = "softphonectl", version, about = "Drive softphoned through its control socket")]
struct Args {
    /// The control socket (default: $XDG_RUNTIME_DIR/softphoned/control.sock).
    #[arg(long, short)]
    socket: Option<PathBuf>,
    /// Print the raw JSON result instead of a short summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Daemon version, uptime, listening points and audio backends.
    Status,
    /// Place a call to a SIP URI (or a number, with an account); prints the call id.
    Dial {
        to: String,
        /// The account to call from (default: the first configured).
        #[arg(long)]
        account: Option<String>,
    },
    /// Answer an incoming call.
    Answer { call: String },
    /// Refuse an incoming call.
    Reject {
        call: String,
        /// busy (486) or decline (603).
        #[arg(long, default_value = "busy")]
        reason: String,
    },
    /// End a call.
    Hangup { call: String },
    /// Hold a call (re-INVITE sendonly).
    Hold { call: String },
    /// Take a call off hold.
    Resume { call: String },
    /// Silence the microphone on a call.
    Mute { call: String },
    /// Give a call the microphone again.
    Unmute { call: String },
    /// Send keys (0-9 * # A-D) on a call.
    Dtmf { call: String, digits: String },
    /// Blind transfer: REFER the call's peer to a SIP URI or number.
    Transfer { call: String, to: String },
    /// Consult: hold the call and dial a colleague; prints the consult call's id.
    Consult { call: String, to: String },
    /// Leave & transfer: hand the call's peer to the consult call's colleague.
    Complete { call: String, consult: String },
    /// End the consult and take the call off hold.
    CancelConsult { call: String, consult: String },
    /// Join answered calls into the local conference.
    Merge {
        #[arg(required = true, num_args = 1..)]
        calls: Vec<String>,
    },
    /// Mark a call for its history (e.g. escalate); --off takes the flag off.
    Flag {
        call: String,
        flag: String,
        #[arg(long)]
        off: bool,
    },
    /// RTP/RTCP figures and MOS estimate of a call.
    Stats { call: String },
    /// List sound devices.
    Devices,
    /// Switch sound devices (names as `devices` prints them; omitted = unchanged).
    Select {
        #[arg(long)]
        input: Option<String>,
        #[arg(long)]
        output: Option<String>,
    },
    /// List live calls.
    List,
    /// List accounts and their registration state.
    Accounts,
    /// Register an account now and keep it registered.
    Register { account: String },
    /// Remove an account's registration.
    Unregister { account: String },
    /// Set the agent ready (takes calls) or not_ready (refuses them).
    Agent { state: String },
    /// Callbacks: offer, accept, dial, wrap up, transfer, schedule, list.
    Callback {
        #[command(subcommand)]
        command: Box<callback::CallbackCmd>,
    },
    /// Ended and open callbacks and calls, newest first.
    History(callback::HistoryArgs),
    /// The browser bridge: pair a web workspace's origin, list, revoke.
    Bridge {
        #[command(subcommand)]
        command: BridgeCmd,
    },
    /// Print events as they come (Ctrl-C to stop).
    Events {
        /// Topics to follow (call, callback, registration, recording, audio, agent); default all.
        topics: Vec<String>,
    },
    /// Call any method with JSON params.
    Raw { method: String, params: Option<String> },
    /// Recordings on disk (no daemon needed): decrypt an encrypted one.
    Recording {
        #[command(subcommand)]
        command: RecordingCmd,
    },
    /// Write the man page and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

#[derive(Subcommand)]
enum RecordingCmd {
    /// Decrypt an encrypted recording (`….wav.age`, `….opus.age`) into OUTPUT
    /// (created, mode 0600). A file cut short by a crash gives back every
    /// complete 64 KiB chunk, and says so; a WAV gets its true sizes.
    Decrypt {
        /// An age identity file (as age-keygen writes it) holding a recipient's key.
        #[arg(long, short)]
        identity: PathBuf,
        /// The recording as stored.
        input: PathBuf,
        /// Where its plaintext goes (must not exist yet).
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum BridgeCmd {
    /// Pair ORIGIN (as in bridge.allowed_origins); prints its token, this once.
    Pair { origin: String },
    /// The paired origins and their ids (never a token).
    List,
    /// Forget a pairing; pages using it are disconnected.
    Revoke { id: String },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A failed command is a message for a person, not a backtrace.
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("softphonectl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Cmd::GenerateDocs { dir } = &args.command {
        return Ok(softphoned::cli_docs::generate(Args::command(), dir)?);
    }
    if let Cmd::Recording { command: RecordingCmd::Decrypt { identity, input, output } } = &args.command {
        let decrypted = softphoned::recorder::decrypt(identity, input, output)?;
        match decrypted.cut {
            None => eprintln!("decrypted {} bytes", decrypted.bytes),
            Some(why) => eprintln!(
                "recovered {} bytes: the file was cut short ({why}); everything up to the cut is kept",
                decrypted.bytes
            ),
        }
        return Ok(());
    }
    let socket = args.socket.unwrap_or_else(softphoned::config::default_control_socket);
    let mut client = Client::connect(&socket)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach softphoned at {}: {e}", socket.display()))?;
    let (method, params) = match args.command {
        Cmd::Status => (method::DAEMON_STATUS, json!({})),
        Cmd::Dial { to, account } => (method::CALL_DIAL, json!({ "to": to, "account": account })),
        Cmd::Answer { call } => (method::CALL_ANSWER, json!({ "call": call })),
        Cmd::Reject { call, reason } => (method::CALL_REJECT, json!({ "call": call, "reason": reason })),
        Cmd::Hangup { call } => (method::CALL_HANGUP, json!({ "call": call })),
        Cmd::Hold { call } => (method::CALL_HOLD, json!({ "call": call })),
        Cmd::Resume { call } => (method::CALL_RESUME, json!({ "call": call })),
        Cmd::Mute { call } => (method::CALL_MUTE, json!({ "call": call })),
        Cmd::Unmute { call } => (method::CALL_UNMUTE, json!({ "call": call })),
        Cmd::Dtmf { call, digits } => (method::CALL_DTMF, json!({ "call": call, "digits": digits })),
        Cmd::Transfer { call, to } => (method::CALL_TRANSFER_BLIND, json!({ "call": call, "to": to })),
        Cmd::Consult { call, to } => (method::CALL_TRANSFER_CONSULT, json!({ "call": call, "to": to })),
        Cmd::Complete { call, consult } => {
            (method::CALL_TRANSFER_COMPLETE, json!({ "call": call, "consult": consult }))
        }
        Cmd::CancelConsult { call, consult } => {
            (method::CALL_TRANSFER_CANCEL, json!({ "call": call, "consult": consult }))
        }
        Cmd::Merge { calls } => (method::CALL_MERGE, json!({ "calls": calls })),
        Cmd::Flag { call, flag, off } => (method::CALL_FLAG, json!({ "call": call, "flag": flag, "on": !off })),
        Cmd::Stats { call } => (method::CALL_STATS, json!({ "call": call })),
        Cmd::Devices => (method::AUDIO_DEVICES, json!({})),
        Cmd::Select { input, output } => (method::AUDIO_SELECT, json!({ "input": input, "output": output })),
        Cmd::List => (method::CALL_LIST, json!({})),
        Cmd::Accounts => (method::ACCOUNT_LIST, json!({})),
        Cmd::Register { account } => (method::ACCOUNT_REGISTER, json!({ "account": account })),
        Cmd::Unregister { account } => (method::ACCOUNT_UNREGISTER, json!({ "account": account })),
        Cmd::Agent { state } => (method::AGENT_SET_STATE, json!({ "state": state })),
        Cmd::Callback { command } => command.request(),
        Cmd::GenerateDocs { .. } | Cmd::Recording { .. } => unreachable!("answered before connecting"),
        Cmd::History(args) => args.request(),
        Cmd::Bridge { command: BridgeCmd::Pair { origin } } => (method::BRIDGE_PAIR, json!({ "origin": origin })),
        Cmd::Bridge { command: BridgeCmd::List } => (method::BRIDGE_LIST, json!({})),
        Cmd::Bridge { command: BridgeCmd::Revoke { id } } => (method::BRIDGE_REVOKE, json!({ "id": id })),
        Cmd::Raw { method, params } => {
            let params: Value = serde_json::from_str(params.as_deref().unwrap_or("{}"))?;
            let result = client.call(&method, params).await?;
            println!("{result}");
            return Ok(());
        }
        Cmd::Events { topics } => {
            let params = if topics.is_empty() { json!({}) } else { json!({ "topics": topics }) };
            client.call(method::EVENTS_SUBSCRIBE, params).await?;
            loop {
                let event = client.next_event().await?;
                if args.json {
                    println!("{event}");
                } else {
                    println!("{} {}", event["method"].as_str().unwrap_or("?"), event["params"]);
                }
            }
        }
    };
    let result = client.call(method, params).await?;
    if args.json {
        println!("{result}");
        return Ok(());
    }
    match method {
        method::CALL_DIAL => println!("{}", result["call"].as_str().unwrap_or_default()),
        method::CALL_TRANSFER_CONSULT => println!("{}", result["consult"].as_str().unwrap_or_default()),
        method::CALL_MERGE => println!("{}", result["conference"]),
        method::CALL_LIST => {
            for call in result["calls"].as_array().into_iter().flatten() {
                let flags: Vec<&str> = ["held", "remote_held", "muted", "secure", "conference"]
                    .into_iter()
                    .filter(|flag| call[*flag].as_bool() == Some(true))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    call["call"].as_str().unwrap_or("?"),
                    call["state"].as_str().unwrap_or("?"),
                    call["direction"].as_str().unwrap_or("?"),
                    call["remote"].as_str().unwrap_or("?"),
                    call["codec"].as_str().unwrap_or("-"),
                    flags.join(",")
                );
            }
        }
        method::ACCOUNT_LIST => {
            for account in result["accounts"].as_array().into_iter().flatten() {
                let registration = &account["registration"];
                println!(
                    "{}\t{}\t{}\t{}",
                    account["account"].as_str().unwrap_or("?"),
                    account["aor"].as_str().unwrap_or("?"),
                    registration["state"].as_str().unwrap_or("?"),
                    registration["reason"].as_str().unwrap_or("")
                );
            }
        }
        method::CALLBACK_OFFER | method::CALLBACK_SCHEDULE => {
            println!("{}", result["callback"].as_str().unwrap_or_default())
        }
        method::CALLBACK_LIST => {
            for entry in result["callbacks"].as_array().into_iter().flatten() {
                println!("{}", callback::callback_line(entry));
            }
        }
        method::HISTORY_LIST => {
            for entry in result["entries"].as_array().into_iter().flatten() {
                println!("{}", callback::history_line(entry));
            }
        }
        method::BRIDGE_PAIR => {
            eprintln!("paired {} as {}; the token is shown this once:", result["origin"], result["id"]);
            println!("{}", result["token"].as_str().unwrap_or_default());
        }
        method::BRIDGE_LIST => {
            for pairing in result["pairings"].as_array().into_iter().flatten() {
                let field = |name: &str| pairing[name].as_str().unwrap_or("?").to_string();
                println!("{}\t{}\t{}", field("id"), field("origin"), field("created_at"));
            }
        }
        method::DAEMON_STATUS | method::CALL_STATS | method::AUDIO_DEVICES => {
            println!("{}", serde_json::to_string_pretty(&result)?)
        }
        _ => println!("ok"),
    }
    Ok(())
}
