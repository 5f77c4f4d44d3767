// Transactions with the Java TransactionMQProducer: three half messages whose local
// transaction commits, rolls back, or answers UNKNOW (left open); the broker's check-back
// asks the producer about the open one, which then commits. A push consumer reports what
// it was delivered.
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.client.producer.TransactionSendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

public class RefTxn {
    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = "JavaTxn";
        DefaultMQAdminExt admin = RefUtil.admin(ns);
        RefUtil.createTopic(admin, topic, 4);

        List<String> got = new CopyOnWriteArrayList<>();
        DefaultMQPushConsumer c = RefUtil.pushConsumer(ns, "CG_JAVA_TXN");
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                got.add(new String(m.getBody()) + "/" + m.getKeys());
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();

        AtomicInteger checks = new AtomicInteger();
        ConcurrentHashMap<String, String> checkedBodies = new ConcurrentHashMap<>();
        TransactionMQProducer p = new TransactionMQProducer("PG_JAVA_TXN");
        p.setNamesrvAddr(ns);
        p.setSendMsgTimeout(15000); // as RefUtil.producer
        p.setTransactionListener(new TransactionListener() {
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                switch (new String(msg.getBody())) {
                    case "commit":
                        return LocalTransactionState.COMMIT_MESSAGE;
                    case "rollback":
                        return LocalTransactionState.ROLLBACK_MESSAGE;
                    default:
                        return LocalTransactionState.UNKNOW;
                }
            }

            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                checks.incrementAndGet();
                checkedBodies.put(new String(msg.getBody()), msg.getTopic());
                return LocalTransactionState.COMMIT_MESSAGE;
            }
        });
        p.start();
        for (String body : new String[] {"commit", "rollback", "check"}) {
            Message m = new Message(topic, "TX", "key-" + body, body.getBytes());
            TransactionSendResult r = p.sendMessageInTransaction(m, null);
            RefUtil.result("send." + body, r.getSendStatus() + "/" + r.getLocalTransactionState());
        }
        Thread.sleep(500);
        RefUtil.result("deliveredBeforeCheck", String.join(",", got));
        RefUtil.await(() -> got.size() >= 2, 30000);
        Thread.sleep(2000);
        List<String> sorted = new java.util.ArrayList<>(got);
        java.util.Collections.sort(sorted);
        RefUtil.result("delivered", String.join(",", sorted));
        RefUtil.result("checkedBodies", String.join(",", new java.util.TreeSet<>(checkedBodies.keySet())));
        RefUtil.result("checkedTopic", checkedBodies.get("check"));
        RefUtil.result("checksAtLeastOne", checks.get() >= 1);
        p.shutdown();
        c.shutdown();
        admin.shutdown();
        System.exit(0);
    }
}
