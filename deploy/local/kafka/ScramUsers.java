// Upserts SCRAM-SHA-512 and SCRAM-SHA-256 credentials for several Kafka users in one JVM,
// then waits until each user can log in on every broker. Run by `stack.sh kafka-users` as a
// single-file program (java -cp "<kafka libs>/*" ScramUsers.java ...):
//
//   ScramUsers ADMIN_PROPERTIES USERS_DIR NAME [NAME...]
//
// The password of NAME is read from USERS_DIR/NAME.password (stack.sh creates it). Prints
// no secret.
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.admin.UserScramCredentialsDescription;
import org.apache.kafka.common.Node;

public class ScramUsers {
  static final int ITERATIONS = 8192;
  static final ScramMechanism[] MECHANISMS = {ScramMechanism.SCRAM_SHA_512, ScramMechanism.SCRAM_SHA_256};

  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: ScramUsers ADMIN_PROPERTIES USERS_DIR NAME [NAME...]");
      System.exit(2);
    }
    Properties adminProps = new Properties();
    try (var in = Files.newInputStream(Path.of(args[0]))) { adminProps.load(in); }
    Path usersDir = Path.of(args[1]);
    Map<String, String> passwords = new HashMap<>();
    for (int i = 2; i < args.length; i++) {
      String name = args[i];
      if (!name.matches("^[a-z][a-z0-9._-]*$")) throw new IllegalArgumentException("bad user name: " + name);
      passwords.put(name, Files.readString(usersDir.resolve(name + ".password")).strip());
    }
    long deadline = System.currentTimeMillis() + 60_000;
    List<Node> nodes;
    try (Admin admin = Admin.create(adminProps)) {
      // A request may alter a user only once: one request per mechanism.
      for (ScramMechanism m : MECHANISMS) {
        List<UserScramCredentialAlteration> alterations = new ArrayList<>();
        for (var e : passwords.entrySet()) {
          alterations.add(new UserScramCredentialUpsertion(e.getKey(), new ScramCredentialInfo(m, ITERATIONS), e.getValue()));
        }
        admin.alterUserScramCredentials(alterations).all().get();
      }
      // The controller has committed the credentials; wait until they are described.
      while (true) {
        try {
          Map<String, UserScramCredentialsDescription> d =
              admin.describeUserScramCredentials(new ArrayList<>(passwords.keySet())).all().get();
          boolean all = passwords.keySet().stream().allMatch(n -> d.containsKey(n) && d.get(n).credentialInfos().size() >= MECHANISMS.length);
          if (all) break;
        } catch (ExecutionException e) {
          // ResourceNotFound until the record is visible
        }
        if (System.currentTimeMillis() > deadline) throw new IllegalStateException("credentials not visible after 60s");
        Thread.sleep(200);
      }
      nodes = new ArrayList<>(admin.describeCluster().nodes().get());
    }
    // Every broker authenticates from its own copy of the metadata: log in as each user on
    // each broker (SCRAM-SHA-512) so a client connecting right after this returns succeeds.
    for (Node node : nodes) {
      for (var e : passwords.entrySet()) {
        Properties p = new Properties();
        p.putAll(adminProps);
        p.put("bootstrap.servers", node.host() + ":" + node.port());
        p.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
            + e.getKey() + "\" password=\"" + e.getValue() + "\";");
        p.put("request.timeout.ms", "5000");
        p.put("default.api.timeout.ms", "10000");
        while (true) {
          try (Admin user = Admin.create(p)) {
            user.describeCluster().clusterId().get();
            break;
          } catch (ExecutionException ex) {
            if (System.currentTimeMillis() > deadline) {
              throw new IllegalStateException("user " + e.getKey() + " cannot log in on " + node.host() + ":" + node.port() + ": " + ex.getCause());
            }
            Thread.sleep(300);
          }
        }
      }
    }
    System.out.println("SCRAM-SHA-512/256 credentials ready on " + nodes.size() + " broker(s) for: " + String.join(" ", passwords.keySet()));
  }
}
